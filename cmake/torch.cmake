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

# The toolkit: CUDAToolkit_ROOT when given, else the system's /usr/local/cuda, else the one
# scripts/setup.sh installs from PyPI's cuda-toolkit extras into the venv (nvidia/cu13).
if(NOT DEFINED CUDAToolkit_ROOT AND DEFINED ENV{CUDAToolkit_ROOT})
  set(CUDAToolkit_ROOT "$ENV{CUDAToolkit_ROOT}")
endif()
if(NOT DEFINED CUDAToolkit_ROOT)
  find_program(_path_nvcc nvcc)
  if(EXISTS /usr/local/cuda/bin/nvcc)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  elseif(_path_nvcc)
    get_filename_component(_nvcc_bin "${_path_nvcc}" REALPATH)
    get_filename_component(_nvcc_bin "${_nvcc_bin}" DIRECTORY)
    get_filename_component(CUDAToolkit_ROOT "${_nvcc_bin}" DIRECTORY)
  else()
    execute_process(
      COMMAND "${ELLIPTICAL_PYTHON}" -c
              "import sysconfig; print(sysconfig.get_paths()['purelib'] + '/nvidia/cu13')"
      OUTPUT_VARIABLE _pip_cuda OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_pip_cuda AND EXISTS "${_pip_cuda}/bin/nvcc")
      set(CUDAToolkit_ROOT "${_pip_cuda}")
    else()
      message(FATAL_ERROR "No CUDA toolkit: the torch wheel's CMake config needs one to configure, "
                          "even for CPU-only use. Run scripts/setup.sh (it installs one from PyPI), "
                          "or pass -DCUDAToolkit_ROOT=<toolkit>.")
    endif()
  endif()
endif()
# FindCUDA (inside the torch config) reads CUDA_TOOLKIT_ROOT_DIR, FindCUDAToolkit CUDAToolkit_ROOT.
if(NOT DEFINED CUDA_TOOLKIT_ROOT_DIR)
  set(CUDA_TOOLKIT_ROOT_DIR "${CUDAToolkit_ROOT}")
endif()
if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS "${CUDAToolkit_ROOT}/bin/nvcc")
  set(CMAKE_CUDA_COMPILER "${CUDAToolkit_ROOT}/bin/nvcc")
endif()
message(STATUS "CUDA toolkit for configuring LibTorch: ${CUDAToolkit_ROOT}")
# Hopper (H100/H200); unset, Torch's config probes for a GPU and falls back to a broad list.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "9.0")
endif()

find_package(Torch REQUIRED)
message(STATUS "LibTorch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}")

# One target for everything that needs tensors. Its include directories stay private to the
# files that link it directly, which keeps LibTorch's headers out of the server's sources.
add_library(elliptical_torch INTERFACE)
# OFF links LibTorch's CPU libraries only, so that a CPU deployment (the CPU container image)
# need not carry the GB of CUDA libraries libtorch_cuda pulls in. libc10_cuda stays: small, and
# model/api/runtime.cc reads its allocator statistics (only when CUDA is available, never without).
option(ELLIPTICAL_CUDA "Link LibTorch's CUDA libraries (OFF: a CPU-only server)" ON)
if(ELLIPTICAL_CUDA)
  target_link_libraries(elliptical_torch INTERFACE ${TORCH_LIBRARIES})
  # For the code that needs libtorch_cuda itself (CUDA graphs), which a CPU-only build lacks.
  target_compile_definitions(elliptical_torch INTERFACE ELLIPTICAL_LIBTORCH_CUDA=1)
else()
  target_link_libraries(elliptical_torch INTERFACE torch_cpu c10 c10_cuda)
endif()
target_include_directories(elliptical_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
target_compile_options(elliptical_torch INTERFACE ${TORCH_CXX_FLAGS})
