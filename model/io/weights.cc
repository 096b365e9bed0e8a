#include "model/io/weights.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace elliptical::model {
namespace {

torch::ScalarType ToTorch(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32: return torch::kFloat32;
    case SafetensorsDtype::kF16: return torch::kFloat16;
    case SafetensorsDtype::kBF16: return torch::kBFloat16;
    case SafetensorsDtype::kF64: return torch::kFloat64;
    case SafetensorsDtype::kI64: return torch::kInt64;
    case SafetensorsDtype::kI32: return torch::kInt32;
    case SafetensorsDtype::kU8: return torch::kUInt8;
    case SafetensorsDtype::kBool: return torch::kBool;
  }
  return torch::kFloat32;
}

std::string ShapeString(at::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// Keeps an error message readable when a whole model is mismatched.
std::string ListSome(const std::vector<std::string>& names) {
  constexpr size_t kShown = 12;
  std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), kShown));
  std::string out = absl::StrJoin(shown, ", ");
  if (names.size() > kShown) absl::StrAppend(&out, ", ... (", names.size() - kShown, " more)");
  return out;
}

}  // namespace

absl::Status LoadWeights(torch::nn::Module& module, const SafetensorsFile& file) {
  std::map<std::string, torch::Tensor> targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) targets[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) targets[item.key()] = item.value();

  std::vector<std::string> missing, unexpected, misshaped;
  for (const auto& [name, target] : targets) {
    auto it = file.entries().find(name);
    if (it == file.entries().end()) {
      missing.push_back(name);
    } else if (at::IntArrayRef(it->second.shape) != target.sizes()) {
      misshaped.push_back(absl::StrCat(name, " (file ", ShapeString(it->second.shape), ", model ",
                                       ShapeString(target.sizes()), ")"));
    }
  }
  for (const auto& [name, entry] : file.entries()) {
    if (!targets.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::vector<std::string> parts;
    if (!missing.empty()) parts.push_back(absl::StrCat("missing: ", ListSome(missing)));
    if (!unexpected.empty()) parts.push_back(absl::StrCat("unexpected: ", ListSome(unexpected)));
    if (!misshaped.empty()) parts.push_back(absl::StrCat("wrong shape: ", ListSome(misshaped)));
    return absl::InvalidArgumentError(
        absl::StrCat("weights do not match the model config; ", absl::StrJoin(parts, "; ")));
  }

  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    const SafetensorsEntry& entry = file.entries().at(name);
    // from_blob does not copy; the copy_ below converts dtype and moves to the device.
    torch::Tensor source = torch::from_blob(const_cast<uint8_t*>(entry.data.data()), entry.shape,
                                            torch::TensorOptions().dtype(ToTorch(entry.dtype)));
    target.copy_(source);
  }
  return absl::OkStatus();
}

}  // namespace elliptical::model
