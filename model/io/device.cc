#include "model/io/device.h"

#include "absl/strings/str_cat.h"
#include "model/io/precision.h"

namespace elliptical::model {

absl::StatusOr<torch::Device> ResolveDevice(const std::string& name) {
  if (name.empty() || name == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  try {
    torch::Device device(name);
    if (device.is_cuda()) {
      const int64_t count = torch::cuda::device_count();
      if (count == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("device \"", name, "\" requested but no CUDA device is present"));
      }
      if (device.has_index() && device.index() >= count) {
        return absl::FailedPreconditionError(
            absl::StrCat("device \"", name, "\" requested but only ", count, " CUDA devices exist"));
      }
      if (!device.has_index()) device = torch::Device(torch::kCUDA, 0);
    } else if (!device.is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("unsupported device \"", name, "\""));
    }
    return device;
  } catch (const c10::Error&) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", name, "\" is not one of auto, cpu, cuda, cuda:N"));
  }
}

absl::StatusOr<torch::ScalarType> ResolveDtype(const std::string& name, const torch::Device& device) {
  auto choice = ChoosePrecision(name, device, HostCpuFeatures(), "the caller");
  if (!choice.ok()) return choice.status();
  return choice->dtype;
}

std::string DtypeName(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    default: return std::string(c10::toString(dtype));
  }
}

}  // namespace elliptical::model
