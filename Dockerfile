# Images of the TAD streaming service (deploy/README.md):
#   docker build -t tad-service .                       runtime: ONNX Runtime CPU, no torch (default)
#   docker build --target gpu -t tad-service:gpu .      onnxruntime-gpu on a CUDA base
#   docker build --target trainer -t tad-trainer .      torch (CPU wheels) for `tad train`
# BuildKit's built-in Dockerfile frontend is enough (Docker ≥ 23 by default, DOCKER_BUILDKIT=1
# on 20.10); no external frontend image is pulled.
# Python packages are pinned in deploy/docker/requirements*.txt (deploy/docker/lock.py writes
# them from the virtualenv CI tested). No secret is stored in an image: API keys and passwords
# come from the environment when a container starts.
# tests/deploy runs the entry point, command and health check of this file outside Docker;
# `make image-check` (deploy/image_check.py) builds and runs the real images.
#
# Build arguments, for machines without the usual registries (deploy/image_check.py uses them):
#   PYTHON_BASE     the base of every CPU stage: a Debian bookworm with python3 and python3-venv
#                   (deploy/docker/base_image.sh builds an equivalent from Debian's archive)
#   CUDA_BASE       the base of the gpu stage
#   TORCH_INDEX_URL where pip finds the CPU torch wheel ("" to use only deploy/docker/wheels/)
# and one optional build secret: `--secret id=pip_cert,src=CA_BUNDLE`, a CA bundle for pip
# behind a TLS-intercepting proxy; it is mounted for the pip steps only, never written to a layer.
ARG PYTHON_BASE=python:3.11.9-slim-bookworm
ARG CUDA_BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------
# base: the Python every CPU stage shares
FROM ${PYTHON_BASE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# ---------------------------------------------------------------------------------------------
# venv: the runtime virtualenv — pinned dependencies first (cached), then the project, no deps
FROM base AS venv
WORKDIR /src
COPY deploy/docker/requirements.txt deploy/docker/requirements.txt
COPY --chmod=0755 deploy/docker/pip.sh /usr/local/bin/tad-pip
RUN --mount=type=secret,id=pip_cert python3 -m venv /opt/venv \
    && tad-pip install --no-cache-dir --requirement deploy/docker/requirements.txt
COPY pyproject.toml ./
COPY LICENSE ./
COPY detector detector
COPY model_training model_training
COPY service service
COPY tad tad
RUN --mount=type=secret,id=pip_cert tad-pip install --no-cache-dir --no-deps . && pip check

# ---------------------------------------------------------------------------------------------
# venv-slim: what the runtime image copies — the same virtualenv without pip, setuptools and the
# packages' own test suites (~90 MB), which a running service never imports
FROM venv AS venv-slim
RUN find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + \
    && python -m pip uninstall --yes --quiet pip setuptools

# ---------------------------------------------------------------------------------------------
# trainer-venv: the runtime virtualenv plus torch (CPU wheels) and the rest of the train extra
FROM venv AS trainer-venv
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY deploy/docker/requirements-train.txt deploy/docker/requirements-train.txt
# deploy/docker/wheels/ (empty in the repository) may hold the torch wheel where its index is
# unreachable; it is bind-mounted for this step only
RUN --mount=type=secret,id=pip_cert --mount=type=bind,source=deploy/docker/wheels,target=/wheels \
    tad-pip install --no-cache-dir --find-links /wheels \
        ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} \
        --requirement deploy/docker/requirements-train.txt \
    && pip check

# ---------------------------------------------------------------------------------------------
# demo: the demo bundle, trained here because the runtime image has no torch. The runtime image
# copies it into an empty model directory when a container starts (deploy/docker/entrypoint.sh).
FROM trainer-venv AS demo
COPY deploy/docker/demo_bundle.py deploy/docker/demo_bundle.py
RUN python deploy/docker/demo_bundle.py /opt/tad/seed-models

# ---------------------------------------------------------------------------------------------
# trainer: `docker compose --profile train run --rm train …` (or any `tad train` command)
FROM base AS trainer
RUN groupadd --system --gid 10001 tad \
    && useradd --system --uid 10001 --gid tad --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin tad \
    && install -d -o tad -g tad /models
COPY --from=trainer-venv /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/train.sh /usr/local/bin/tad-train-bundle
ENV TAD_MODEL_DIR=/models
WORKDIR /opt/tad
USER 10001:10001
ENTRYPOINT ["tad-train-bundle"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------
# gpu: the service on onnxruntime-gpu (TAD_DEVICE=cuda). The CUDA/cuDNN base must match what
# the pinned onnxruntime-gpu was built for (1.31: CUDA 13, cuDNN 9); run with `--gpus all` or
# the compose override deploy/docker-compose.gpu.yml.
FROM ${CUDA_BASE} AS gpu
ARG ORT_GPU_VERSION=1.31.1
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# Ubuntu's Python from the release the base tag pins (exact apt versions are replaced by
# security updates, so pinning them would break rebuilds)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tad \
    && useradd --system --uid 10001 --gid tad --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin tad \
    && install -d -o tad -g tad /models
WORKDIR /src
COPY deploy/docker/requirements.txt deploy/docker/requirements.txt
# the CPU onnxruntime and onnxruntime-gpu install the same module: take only the GPU one
RUN python3 -m venv /opt/venv \
    && grep -v '^onnxruntime==' deploy/docker/requirements.txt > /tmp/requirements-gpu.txt \
    && pip install --no-cache-dir --requirement /tmp/requirements-gpu.txt \
        "onnxruntime-gpu==${ORT_GPU_VERSION}" \
    && rm /tmp/requirements-gpu.txt
COPY pyproject.toml ./
COPY LICENSE ./
COPY detector detector
COPY model_training model_training
COPY service service
COPY tad tad
RUN pip install --no-cache-dir --no-deps . && pip check
COPY --from=demo /opt/tad/seed-models /opt/tad/seed-models
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/tad-entrypoint
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/tad-healthcheck
ENV TAD_HOST=0.0.0.0 \
    TAD_PORT=8000 \
    TAD_MODEL_DIR=/models \
    TAD_SEED_MODEL_DIR=/opt/tad/seed-models \
    TAD_DEVICE=cuda
WORKDIR /opt/tad
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/tad-healthcheck"]
ENTRYPOINT ["tad-entrypoint"]
CMD ["tad", "serve"]

# ---------------------------------------------------------------------------------------------
# runtime (default target): ONNX Runtime CPU, no torch, no compiler, runs as uid 10001 and writes
# only to the model directory (a volume) and /tmp, so the root filesystem can be read-only.
FROM base AS runtime
RUN groupadd --system --gid 10001 tad \
    && useradd --system --uid 10001 --gid tad --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin tad \
    && install -d -o tad -g tad /models
COPY --from=venv-slim /opt/venv /opt/venv
COPY --from=demo /opt/tad/seed-models /opt/tad/seed-models
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/tad-entrypoint
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/tad-healthcheck
ENV TAD_HOST=0.0.0.0 \
    TAD_PORT=8000 \
    TAD_MODEL_DIR=/models \
    TAD_SEED_MODEL_DIR=/opt/tad/seed-models
WORKDIR /opt/tad
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/tad-healthcheck"]
ENTRYPOINT ["tad-entrypoint"]
CMD ["tad", "serve"]
