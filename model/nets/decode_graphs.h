// Decode steps of a fixed shape, so that a CUDA graph can replay them ("cuda_graphs" in a
// language model's config.json). A step over n live sequences runs at the batch-size bucket
// b >= n (powers of two up to the cache's slot count): it decodes slots 0..b-1 of LmSlots over
// all max_positions, the key mask built from each row's length, and also draws each row's token
// (token_draw.h). Rows n..b-1 are padding: length 0 and token 0 in free slots (the live slots
// are 0..n-1), so they write a key, a value and a metric-sum increment into slots nobody holds;
// a prefill's LmSlots::Write overwrites all of that (position 0 always, since a prompt is never
// empty, and the whole metric sum) before the slot is used again, and Move copies whole sums.
//
// The same fixed-shape step runs eagerly on any device (the CPU tests compare it with the
// variable-shape LmSlots::View step). On CUDA, each bucket's graph is captured once, at the
// first step of that size (eagerly run for real, then captured without running on a side stream
// from LibTorch's pool), and replayed on the current stream afterwards, the inputs copied into
// the bucket's static tensors first. A bucket whose capture fails (an operation that cannot be
// captured) runs eagerly from then on, with one warning on stderr.
//
// Not thread-safe: the caller serialises it with the cache (SlotPool's mutex).
#pragma once

#include <map>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "model/nets/decoder_lm.h"

namespace at::cuda {
struct CUDAGraph;
}

namespace elliptical::model {

// One bucket's inputs, on the model's device.
struct FixedStepInputs {
  torch::Tensor tokens;   // (b) int64: each row's new token
  torch::Tensor lengths;  // (b) int64: each row's length before it
  torch::Tensor draw;     // (4, b) float64: DrawTokens' params (padding rows greedy)
};

struct FixedStepOutputs {
  torch::Tensor logits;  // (b, V) float32
  torch::Tensor drawn;   // (3, b) float64: DrawTokens' result
};

// The step itself, eager: every row of `in` decoded in slots 0..b-1 over all max_positions.
FixedStepOutputs FixedDecodeStep(DecoderLmImpl& net, LmSlots& slots, const FixedStepInputs& in);

class DecodeGraphs {
 public:
  // `capture`: record and replay CUDA graphs (a CUDA device); false runs the fixed-shape step
  // eagerly every time.
  DecodeGraphs(int capacity, const torch::Device& device, bool capture);
  ~DecodeGraphs();

  // The bucket for n rows: the smallest power of two >= n, at most the capacity.
  static int Bucket(int n, int capacity);

  // One step over slots 0..n-1 (row r is slot r): tokens and lengths (n each), draw params
  // (4, n) float64 on the host. Returns the bucket's outputs narrowed to the n rows; they stay
  // valid until the next call.
  FixedStepOutputs Step(DecoderLmImpl& net, LmSlots& slots, const std::vector<int64_t>& tokens,
                        const std::vector<int64_t>& lengths, const torch::Tensor& draw);

  int captured() const;  // graphs captured so far

 private:
  struct Bucketed;
  const int capacity_;
  const torch::Device device_;
  const bool capture_;
  std::map<int, std::unique_ptr<Bucketed>> buckets_;
};

}  // namespace elliptical::model
