# The operator image: `campaign-operator` (kopf) and nothing of the trainer's heavy stack.
# Build: docker build -t campaign-operator:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir uv
COPY pyproject.toml uv.lock README.md ./
COPY operator ./operator
COPY trainer_image ./trainer_image
# Exactly the locked versions of the operator's dependencies, then the package itself.
RUN uv export --frozen --no-dev --no-hashes --extra operator --no-emit-project > /tmp/requirements.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
# Non-root, numeric (runAsNonRoot can verify it); the chart runs it with the same uid.
USER 10001:10001
EXPOSE 9090 8081
ENTRYPOINT ["campaign-operator"]
CMD ["--all-namespaces"]
