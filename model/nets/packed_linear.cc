#include "model/nets/packed_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>

namespace elliptical::model {
namespace {

namespace F = torch::nn::functional;

// LibTorch's oneDNN linear ops (the ones torch.compile's CPU freezing emits), found by name at
// run time: a LibTorch built without oneDNN has none, and the layer then stays unpacked.
struct OneDnnLinearOps {
  std::optional<c10::OperatorHandle> reorder =
      c10::Dispatcher::singleton().findOp({"mkldnn::_reorder_linear_weight", ""});
  std::optional<c10::OperatorHandle> linear =
      c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
  bool available() const { return reorder.has_value() && linear.has_value(); }
};

const OneDnnLinearOps& Ops() {
  static const OneDnnLinearOps ops;
  return ops;
}

}  // namespace

PackedLinearImpl::PackedLinearImpl(int64_t in_features, int64_t out_features, bool with_bias) {
  // torch::nn::Linear's initialisation, so an unloaded layer behaves as one.
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    bias = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
  }
}

bool PackedLinearImpl::Pack(int64_t rows) {
  packed_ = torch::Tensor();
  if (!weight.device().is_cpu() || weight.scalar_type() != torch::kBFloat16 || !Ops().available()) {
    return false;
  }
  try {
    torch::jit::Stack stack{weight.detach(), c10::IValue(rows)};
    Ops().reorder->callBoxed(&stack);
    packed_ = stack.at(0).toTensor();
    return true;
  } catch (const c10::Error&) {
    return false;  // oneDNN has no bf16 kernels for this CPU: the plain path works everywhere
  }
}

torch::Tensor PackedLinearImpl::forward(const torch::Tensor& x, bool gelu) {
  // The packed path only for what it was packed for; anything else (a float32 input in a test,
  // a weight changed after packing is not supported) takes the plain one.
  if (!packed_.defined() || x.scalar_type() != torch::kBFloat16 || !x.device().is_cpu()) {
    torch::Tensor y = F::linear(x, weight, bias);
    return gelu ? F::gelu(y) : y;
  }
  torch::jit::Stack stack{x.contiguous(),
                          packed_,
                          bias.defined() ? c10::IValue(bias) : c10::IValue(),
                          c10::IValue(std::string(gelu ? "gelu" : "none")),
                          c10::IValue(c10::List<std::optional<at::Scalar>>()),
                          gelu ? c10::IValue(std::string("none")) : c10::IValue()};
  Ops().linear->callBoxed(&stack);
  return stack.at(0).toTensor();
}

torch::Tensor PackedLinearImpl::ForwardFloat32(const torch::Tensor& x) {
  return Float32Linear(x, weight, bias);
}

torch::Tensor Float32Linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (x.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32) {
    return bias.defined() ? F::linear(x, weight, bias) : F::linear(x, weight);
  }
  const torch::Tensor w = weight.to(torch::kFloat32);
  return bias.defined() ? F::linear(x.to(torch::kFloat32), w, bias.to(torch::kFloat32))
                        : F::linear(x.to(torch::kFloat32), w);
}

int PackLinears(torch::nn::Module& module, int64_t rows) {
  int packed = 0;
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (auto* packable = dynamic_cast<CpuPackable*>(m.get())) packed += packable->Pack(rows) ? 1 : 0;
  }
  return packed;
}

}  // namespace elliptical::model
