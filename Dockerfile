# The operator image: `campaign-operator` (kopf) and nothing of the trainer's heavy stack.
# Build: docker build -t campaign-operator:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/operator.lock ./requirements/
COPY operator ./operator
COPY trainer_image ./trainer_image
# Exactly the locked (hash-checked) versions of the operator's dependencies, then the package itself.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements/operator.lock \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
# Non-root, numeric (runAsNonRoot can verify it); the chart runs it with the same uid.
USER 10001:10001
EXPOSE 9090 8081
ENTRYPOINT ["campaign-operator"]
CMD ["--all-namespaces"]
