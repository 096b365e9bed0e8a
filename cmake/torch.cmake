# Finds LibTorch inside the torch wheel of ELLIPTICAL_PYTHON (or of Torch_DIR when given).
#
# The PyPI wheel is built for CUDA, and its CMake config insists on a CUDA toolkit at configure
# time even where no GPU will ever be used; the binaries still run on the CPU without one.
if(NOT Torch_DIR)
  execute_process(
    COMMAND "${ELLIPTICAL_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _torch_result)
  if(NOT _torch_result EQUAL 0)
    message(FATAL_ERROR "Cannot import torch with ${ELLIPTICAL_PYTHON}. Run scripts/setup.sh, "
                        "or pass -DELLIPTICAL_PYTHON=<python with torch>.")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
endif()

if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CUDAToolkit_ROOT /usr/local/cuda)
endif()
if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
# Hopper (H100/H200); unset, Torch's config probes for a GPU and falls back to a broad list.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "9.0")
endif()

find_package(Torch REQUIRED)
message(STATUS "LibTorch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}")

# One target for everything that needs tensors. Its include directories stay private to the
# files that link it directly, which keeps LibTorch's headers out of the server's sources.
add_library(elliptical_torch INTERFACE)
target_link_libraries(elliptical_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(elliptical_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
target_compile_options(elliptical_torch INTERFACE ${TORCH_CXX_FLAGS})
