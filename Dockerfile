# syntax=docker/dockerfile:1
# The operator image: `campaign-operator` (kopf) and nothing of the trainer's heavy stack.
# The local cluster builds it on its Debian 12 base: hack/build-images.sh operator. Elsewhere:
#   docker build -t campaign-operator:0.1.0 .
ARG BASE_IMAGE=python:3.11-slim-bookworm

# The project alone in an otherwise empty /opt/venv; the final stage copies it over the dependencies.
# uv and hatchling (hashed) install and build, and never ship. A RUN that reaches an index sources
# the build-env secret: the builder's index settings, kept in no layer and no history.
FROM ${BASE_IMAGE} AS code
COPY hack/images/build.lock /tmp/build.lock
RUN --mount=type=secret,id=build-env --mount=type=secret,id=host-ca --mount=type=cache,target=/root/.cache/pip \
    if [ -f /run/secrets/build-env ]; then . /run/secrets/build-env; fi \
 && python3 -m venv /opt/tools \
 && /opt/tools/bin/pip install --no-deps --require-hashes -r /tmp/build.lock
COPY pyproject.toml README.md /src/
COPY operator/campaign_operator /src/operator/campaign_operator
COPY trainer_image/campaign_trainer /src/trainer_image/campaign_trainer
# One wheel holds both packages; the operator never imports the trainer's.
RUN /opt/tools/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /tmp/dist /src \
 && python3 -m venv --without-pip /opt/venv \
 && /opt/tools/bin/uv pip install --python /opt/venv/bin/python --no-cache --no-index --no-deps \
      --compile-bytecode /tmp/dist/*.whl

FROM ${BASE_IMAGE}
# Non-root and numeric (runAsNonRoot can verify it); the chart runs it with the same uid.
RUN groupadd --gid 10001 campaign \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin campaign
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# Dependencies first, a layer of their own: exactly the locked, hash-checked versions of the
# operator extra, byte-compiled (the non-root user could not write the caches at run time).
COPY requirements/operator.lock hack/images/build.lock /opt/venv/
RUN --mount=type=secret,id=build-env --mount=type=secret,id=host-ca \
    --mount=type=cache,target=/root/.cache/pip --mount=type=cache,target=/root/.cache/uv \
    if [ -f /run/secrets/build-env ]; then . /run/secrets/build-env; fi \
 && python3 -m venv /tmp/tools \
 && /tmp/tools/bin/pip install --no-deps --require-hashes -r /opt/venv/build.lock \
 && python3 -m venv --without-pip /opt/venv \
 && UV_LINK_MODE=copy /tmp/tools/bin/uv pip install --python /opt/venv/bin/python \
      --require-hashes --compile-bytecode -r /opt/venv/operator.lock \
 && rm -rf /tmp/tools

# Then the code: a source change rebuilds only these small layers.
COPY --from=code /opt/venv/lib/python3.11/site-packages/ /opt/venv/lib/python3.11/site-packages/
COPY --from=code /opt/venv/bin/campaign /opt/venv/bin/campaign-operator /opt/venv/bin/
RUN python -c "import campaign_operator.k8s.main"

USER 10001:10001
EXPOSE 9090 8081
ENTRYPOINT ["campaign-operator"]
CMD ["--all-namespaces"]
