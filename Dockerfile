# Multi-stage image of the elliptical-attention model server.
#
#   docker build -t elliptical-server .
#   docker run -p 8500:8500 elliptical-server
#
# BUILD_IMAGE must be Debian 12 (bookworm) based, like the project's machines: scripts/setup.sh
# installs Debian 12 packages. LibTorch comes from the torch wheel (built for CUDA 13.0), whose
# CMake config needs a CUDA 13 toolkit at /usr/local/cuda to configure; pass a bookworm image
# carrying one (for production, the GPU build image of your registry) as BUILD_IMAGE.
# RUNTIME_IMAGE needs no toolkit: the CUDA libraries travel inside the torch wheel's packages.
ARG BUILD_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm

FROM ${BUILD_IMAGE} AS build
ENV ELLIPTICAL_VENV=/opt/elliptical/venv
WORKDIR /src
# Dependencies first, so that a source change does not re-download them.
COPY scripts/ scripts/
RUN bash scripts/setup.sh
COPY . .
RUN bash scripts/build.sh -DELLIPTICAL_BUILD_TESTS=OFF \
      -DELLIPTICAL_PYTHON=${ELLIPTICAL_VENV}/bin/python \
      -DCMAKE_INSTALL_PREFIX=/opt/elliptical \
 && cmake --install build

FROM ${RUNTIME_IMAGE} AS runtime
COPY scripts/ /opt/elliptical/scripts/
RUN bash /opt/elliptical/scripts/setup.sh --runtime && rm -rf /var/lib/apt/lists/*
# LibTorch and the CUDA libraries it loads, at the path the binaries' RPATH names.
COPY --from=build /opt/elliptical/venv /opt/elliptical/venv
COPY --from=build /opt/elliptical/bin /opt/elliptical/bin
# The SentencePiece shim the server loads at run time (server/generation/sentencepiece_shim.cc).
COPY --from=build /opt/elliptical/lib /opt/elliptical/lib
# The default models, trained by training/train.py and kept in the repository.
COPY models/ /opt/elliptical/models/
RUN useradd --system --uid 10001 elliptical
USER elliptical
EXPOSE 8500 8501
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s \
  CMD ["/opt/elliptical/bin/elliptical-client", "--server=127.0.0.1:8500", "--timeout_s=4", "health"]
ENTRYPOINT ["/opt/elliptical/bin/elliptical-server"]
CMD ["--model_repository=/opt/elliptical/models", "--port=8500"]
