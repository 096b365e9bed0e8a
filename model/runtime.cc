#include "model/runtime.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace elliptical::model {

void SetComputeThreads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

std::string RuntimeSummary() {
  const bool cuda = torch::cuda::is_available();
  return absl::StrCat("LibTorch ", TORCH_VERSION, ", ", torch::get_num_threads(),
                      " CPU compute threads, CUDA ",
                      cuda ? absl::StrCat(torch::cuda::device_count(), " device(s)")
                           : std::string("not available"));
}

}  // namespace elliptical::model
