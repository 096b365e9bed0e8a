#include "model/nets/decode_graphs.h"

// CUDA graphs live in libtorch_cuda, which a CPU-only build (-DELLIPTICAL_CUDA=OFF: the CPU
// image, the sanitizer builds) does not link: there every bucket runs its fixed-shape step
// eagerly, as on a CPU device.
#ifdef ELLIPTICAL_LIBTORCH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "model/nets/token_draw.h"

namespace elliptical::model {

FixedStepOutputs FixedDecodeStep(DecoderLmImpl& net, LmSlots& slots, const FixedStepInputs& in) {
  const int b = static_cast<int>(in.tokens.size(0));
  LmCache view = slots.View(b, net.config().shape.max_positions);
  view.lengths = in.lengths;
  torch::Tensor logits = net.Decode(in.tokens, &view);
  return {logits, DrawTokens(logits, in.draw, /*any_sampled=*/true)};
}

struct DecodeGraphs::Bucketed {
  FixedStepInputs in;
  FixedStepOutputs out;  // the graph's outputs, written by every replay
#ifdef ELLIPTICAL_LIBTORCH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#else
  struct NoGraph {};
  std::unique_ptr<NoGraph> graph;  // never set: no graphs without libtorch_cuda
#endif
  bool eager_only = false;  // its capture failed
};

DecodeGraphs::DecodeGraphs(int capacity, const torch::Device& device, bool capture)
#ifdef ELLIPTICAL_LIBTORCH_CUDA
    : capacity_(capacity), device_(device), capture_(capture && device.is_cuda()) {}
#else
    : capacity_(capacity), device_(device), capture_(false) {}
#endif

DecodeGraphs::~DecodeGraphs() = default;

int DecodeGraphs::Bucket(int n, int capacity) {
  int b = 1;
  while (b < n) b *= 2;
  return std::min(b, std::max(capacity, n));
}

int DecodeGraphs::captured() const {
  int n = 0;
  for (const auto& [size, bucket] : buckets_) n += bucket->graph != nullptr;
  return n;
}

FixedStepOutputs DecodeGraphs::Step(DecoderLmImpl& net, LmSlots& slots, const std::vector<int64_t>& tokens,
                                    const std::vector<int64_t>& lengths, const torch::Tensor& draw) {
  const int n = static_cast<int>(tokens.size());
  const int b = Bucket(n, capacity_);
  std::unique_ptr<Bucketed>& bucket = buckets_[b];
  if (!bucket) {
    bucket = std::make_unique<Bucketed>();
    const auto on = torch::TensorOptions().device(device_);
    bucket->in = {torch::zeros({b}, on.dtype(torch::kInt64)), torch::zeros({b}, on.dtype(torch::kInt64)),
                  torch::zeros({4, b}, on.dtype(torch::kFloat64))};
  }
  // Padding rows: token 0, length 0, greedy (all zeros).
  torch::Tensor ids = torch::zeros({2, b}, torch::kInt64);
  auto a = ids.accessor<int64_t, 2>();
  for (int r = 0; r < n; ++r) {
    a[0][r] = tokens[r];
    a[1][r] = lengths[r];
  }
  torch::Tensor params = torch::zeros({4, b}, torch::kFloat64);
  params.narrow(1, 0, n).copy_(draw);
  bucket->in.tokens.copy_(ids[0]);
  bucket->in.lengths.copy_(ids[1]);
  bucket->in.draw.copy_(params);

  FixedStepOutputs out;
#ifdef ELLIPTICAL_LIBTORCH_CUDA
  if (bucket->graph) {
    bucket->graph->replay();
    out = bucket->out;
  } else {
    out = FixedDecodeStep(net, slots, bucket->in);  // this step, for real
    if (capture_ && !bucket->eager_only) {
      // Captured, not run: recording launches nothing, so the cache sees this step once. The side
      // stream first waits for the current one (the step above); thread-local capture mode keeps
      // other threads' CUDA work (another model) legal meanwhile.
      const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(device_.index());
      const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device_.index());
      at::cuda::CUDAEvent ready;
      ready.record(current);
      ready.block(side);
      auto graph = std::make_unique<at::cuda::CUDAGraph>();
      try {
        c10::cuda::CUDAStreamGuard on_side(side);
        graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
        try {
          bucket->out = FixedDecodeStep(net, slots, bucket->in);
        } catch (...) {
          try {
            graph->capture_end();  // ends the (invalidated) capture on the side stream
          } catch (...) {
          }
          throw;
        }
        graph->capture_end();
        bucket->graph = std::move(graph);
      } catch (const std::exception& e) {
        // A graph is an optimisation: this step already ran, so the bucket goes on eagerly, and
        // says so once on stderr (model/ has no log of its own).
        bucket->eager_only = true;
        bucket->out = {};
        TORCH_WARN("decode step at batch size ", b, " could not be captured as a CUDA graph; it runs eagerly: ",
                   e.what());
      }
    }
  }
#else
  out = FixedDecodeStep(net, slots, bucket->in);
#endif
  return {out.logits.narrow(0, 0, n), out.drawn.narrow(1, 0, n)};
}

}  // namespace elliptical::model
