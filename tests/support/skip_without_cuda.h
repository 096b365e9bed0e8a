// For the tests labelled gpu (ctest -L gpu): without a CUDA device each case skips itself, with
// the reason, instead of failing; they run where a GPU is present (the device run).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#define SKIP_WITHOUT_CUDA()                                                                     \
  if (!torch::cuda::is_available()) {                                                           \
    GTEST_SKIP() << "no CUDA device: LibTorch reports torch::cuda::is_available() false; the "  \
                    "gpu-labelled tests run where one is present";                              \
  }

namespace elliptical::testing {

inline const torch::Device kCuda(torch::kCUDA, 0);

}  // namespace elliptical::testing
