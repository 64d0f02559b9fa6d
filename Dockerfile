# syntax=docker/dockerfile:1
# benchd for Linux hosts with NVIDIA GPUs (default) or CPUs only:
#   docker build -t benchd .                         (CUDA)
#   docker build -t benchd:cpu --build-arg VARIANT=cpu .
# macOS cannot reach MPS from a container: use the native install (docs/deploy.md).
# Base images and package sources are build arguments: point them at a mirror or a local base without
# editing this file (docs/deploy.md), e.g. --build-arg CPU_BASE=localhost/debian-python:bookworm
# --build-arg PIP_INDEX_URL=https://pypi.example.internal/simple --build-arg TORCH_INDEX=...
ARG VARIANT=cuda
ARG CUDA_BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG CPU_BASE=python:3.12-slim-bookworm

FROM ${CUDA_BASE} AS base-cuda
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV TORCH_INDEX=${TORCH_INDEX}
# gcc, g++ and the Python headers: `--compile` builds kernels (Inductor's C++, Triton's launcher) at run time.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc g++ \
 && rm -rf /var/lib/apt/lists/*

FROM ${CPU_BASE} AS base-cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV TORCH_INDEX=${TORCH_INDEX}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ \
 && rm -rf /var/lib/apt/lists/*

# A stage of this file, chosen by the build argument (not an image to pin).
# hadolint ignore=DL3006
FROM base-${VARIANT}
ARG VARIANT
# pip reads these from the environment a RUN step sees; unset, it uses its default index.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# What runs record as their container image (the `system` object); pass the tag you push.
ARG IMAGE=benchd:${VARIANT}
ENV VIRTUAL_ENV=/opt/benchd \
    PATH=/opt/benchd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BENCHD_DATA_DIR=/var/lib/benchd \
    BENCHD_HOST=0.0.0.0 \
    BENCHD_IMAGE=${IMAGE}
RUN python3 -m venv /opt/benchd \
 && useradd --system --uid 10001 --create-home --home-dir /home/benchd benchd \
 && mkdir -p /var/lib/benchd \
 && chown benchd:benchd /var/lib/benchd

# Dependencies first: these layers change only when pyproject.toml does.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" \
      "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
COPY pyproject.toml deploy/print_requirements.py /src/
RUN python3 /src/print_requirements.py /src/pyproject.toml > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt

# The source last.
COPY README.md /src/
COPY daemon /src/daemon
COPY workloads /src/workloads
RUN pip install --no-cache-dir --no-deps /src

USER 10001
VOLUME ["/var/lib/benchd"]
EXPOSE 9655
# Off loopback the daemon requires a token: run with -e BENCHD_TOKEN=... (16+ characters).
# `benchd status` asks this host's daemon on BENCHD_PORT (run with -e BENCHD_PORT=... to move it); a GET,
# which needs no token.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
  CMD ["benchd", "status"]
ENTRYPOINT ["benchd"]
CMD ["serve"]
