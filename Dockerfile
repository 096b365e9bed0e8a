# Multi-stage image of the elliptical-attention model server, in two variants.
#
#   docker build -t elliptical-server:cpu .                               # VARIANT=cpu, the default
#   docker build --build-arg VARIANT=gpu -t elliptical-server:gpu .
#   docker run -p 8500:8500 -p 8501:8501 elliptical-server:cpu
#   docker run --gpus all -p 8500:8500 -p 8501:8501 elliptical-server:gpu
#
# scripts/container_smoke.sh builds one, starts it and calls it from outside (with docker, podman,
# or buildah where no engine runs); docs/building.md, "Container image", has its sizes and times.
#
# Both variants start from stock Debian 12, the distribution scripts/setup.sh installs packages
# for (gRPC 1.51, protobuf 3.21, ... in both stages), and need no CUDA base image:
# - build: the torch wheel's CMake config wants a CUDA toolkit to configure, even for CPU use;
#   without /usr/local/cuda, setup.sh installs the parts it needs from PyPI.
# - gpu: the CUDA runtime libraries come with the torch wheel's nvidia-* packages, where LibTorch
#   finds them by RPATH, and the driver (libcuda) comes from the host at `docker run --gpus`, by the
#   NVIDIA container toolkit. An nvidia/cuda runtime image would add a second CUDA runtime that
#   nothing loads, and it is Ubuntu or UBI, not the Debian 12 whose packages setup.sh installs.
# - cpu: built with -DELLIPTICAL_CUDA=OFF, so the server loads LibTorch's CPU libraries only; of
#   CUDA it carries libcudart and libcupti (5 MB), which libtorch_cpu itself needs, GPU or not.
ARG BUILD_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm
ARG VARIANT=cpu

FROM ${BUILD_IMAGE} AS build
# No pip cache: it would double the downloaded wheels (3 GB) inside this stage's layer.
ENV ELLIPTICAL_VENV=/opt/elliptical/venv PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first, so that a source change does not download them again; and before VARIANT,
# so that both variants share them.
COPY scripts/ scripts/
RUN bash scripts/setup.sh
COPY . .
ARG VARIANT
RUN case "$VARIANT" in cpu) cuda=OFF ;; gpu) cuda=ON ;; \
      *) echo "VARIANT is cpu or gpu, not '$VARIANT'" >&2; exit 1 ;; esac \
 && ELLIPTICAL_BUILD_DIR=/tmp/build bash scripts/build.sh -DELLIPTICAL_BUILD_TESTS=OFF \
      -DELLIPTICAL_CUDA=$cuda -DELLIPTICAL_PYTHON=${ELLIPTICAL_VENV}/bin/python \
      -DCMAKE_INSTALL_PREFIX=/opt/elliptical \
 && cmake --install /tmp/build \
 && bash deploy/container/stage_runtime.sh "$VARIANT" /opt/elliptical "$ELLIPTICAL_VENV" /stage \
 && rm -rf /tmp/build

FROM ${RUNTIME_IMAGE} AS runtime
# The Debian libraries the binaries link against (setup.sh's runtime list), and the user it runs as.
COPY scripts/setup.sh scripts/versions.sh /tmp/elliptical-setup/scripts/
RUN bash /tmp/elliptical-setup/scripts/setup.sh --runtime \
 && rm -rf /tmp/elliptical-setup /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 elliptical \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin elliptical
# The default models, trained by training/train.py and kept in the repository.
COPY models/ /opt/elliptical/models/
# Server, client, SentencePiece shim and LibTorch's libraries (deploy/container/stage_runtime.sh).
# Last: it changes with every source change, the layers above it seldom.
COPY --from=build /stage/ /
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8500 8501 8502
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s \
  CMD ["/opt/elliptical/bin/elliptical-client", "--server=127.0.0.1:8500", "--timeout_s=4", "health"]
ENTRYPOINT ["/opt/elliptical/bin/elliptical-server"]
CMD ["--model_repository=/opt/elliptical/models", "--port=8500", "--metrics_port=8501", "--http_port=8502"]

FROM runtime AS runtime-cpu

FROM runtime AS runtime-gpu
# Asks the NVIDIA container toolkit for the driver's compute libraries (it mounts them in).
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM runtime-${VARIANT}
