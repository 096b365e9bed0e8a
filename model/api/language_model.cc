#include "model/api/language_model.h"

#include <algorithm>
#include <numeric>

#include <torch/torch.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "model/nets/decode_graphs.h"
#include "model/nets/decoder_lm.h"
#include "model/io/device.h"
#include "model/nets/layer_stats.h"
#include "model/nets/token_draw.h"
#include "model/io/module_loader.h"
#include "model/io/weights.h"

namespace elliptical::model {
namespace {

class LmSequence;

// The slots and who holds them. Shared with every Sequence, so a sequence released after its
// model is gone still finds the pool it returns its slot to.
struct SlotPool {
  // Serialises the cache tensors: a step reads and writes every live slot, a release moves one.
  absl::Mutex mu;
  LmSlots slots ABSL_GUARDED_BY(mu);
  int capacity ABSL_GUARDED_BY(mu) = 0;  // 0 until AllocateCache
  // Compact: slot i is held by owners[i], so live slots are 0..owners.size()-1 and a step over
  // all of them reads plain views.
  std::vector<LmSequence*> owners ABSL_GUARDED_BY(mu);
  int64_t live_tokens ABSL_GUARDED_BY(mu) = 0;
  int64_t bytes_per_token = 0;  // set before any sequence exists, then read-only
  int64_t sum_bytes_per_slot = 0;
  int slot_tokens = 0;

  // Apart from mu, so that metrics never wait for a step.
  mutable absl::Mutex usage_mu;
  CacheUsage usage ABSL_GUARDED_BY(usage_mu);

  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::MutexLock lock(&usage_mu);
    usage = {capacity, static_cast<int>(owners.size()), slot_tokens, slots.bytes(),
             live_tokens * bytes_per_token};
  }
  void Release(LmSequence* seq);
};

class LmSequence final : public LanguageModel::Sequence {
 public:
  LmSequence(std::shared_ptr<SlotPool> pool, std::vector<int32_t> tokens, int slot)
      : pool(std::move(pool)), tokens(std::move(tokens)), slot(slot) {}
  ~LmSequence() override { pool->Release(this); }
  int length() const override { return static_cast<int>(tokens.size()); }
  int64_t cache_bytes() const override {
    return length() * pool->bytes_per_token + pool->sum_bytes_per_slot;
  }

  const std::shared_ptr<SlotPool> pool;
  // Written under pool->mu (by Step, and by a release that moves this sequence's slot).
  std::vector<int32_t> tokens;
  int slot;
  bool damaged = false;  // its slot lost its contents (a failed step or move)
};

void SlotPool::Release(LmSequence* seq) {
  absl::MutexLock lock(&mu);
  const int last = static_cast<int>(owners.size()) - 1;
  live_tokens -= seq->length();
  if (seq->slot != last) {
    LmSequence* moved = owners[last];
    try {
      c10::InferenceMode inference;
      slots.Move(last, seq->slot, moved->length());
    } catch (const std::exception&) {  // c10::Error too; a destructor cannot report it
      moved->damaged = true;
    }
    moved->slot = seq->slot;
    owners[seq->slot] = moved;
  }
  owners.pop_back();
  Publish();
}

// Runs LibTorch work in inference mode, turning its exceptions into a status.
template <typename T, typename F>
absl::StatusOr<T> Guarded(const char* what, F&& work) {
  try {
    c10::InferenceMode inference;
    return work();
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " ran out of device memory: ",
                                                     e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(what, " failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, " failed: ", e.what()));
  }
}

class DecoderLanguageModel final : public LanguageModel {
 public:
  DecoderLanguageModel(DecoderLm net, torch::Device device, ModelDescription description,
                       std::shared_ptr<const Float32MathPolicy::Vote> tf32_vote)
      : net_(std::move(net)),
        device_(device),
        description_(std::move(description)),
        tf32_vote_(std::move(tf32_vote)),
        pool_(std::make_shared<SlotPool>()),
        samples_on_device_(config().decode.sample_on_device == SampleOnDevice::kAuto
                               ? device.is_cuda()
                               : config().decode.sample_on_device == SampleOnDevice::kOn) {
    const bool prefix = config().scale_mode == ScaleMode::kPrefix;
    const int64_t slot = LmSlots::BytesPerSlot(config(), dtype());
    pool_->bytes_per_token = prefix ? CacheBytesPerToken() : 0;
    pool_->sum_bytes_per_slot = slot - pool_->bytes_per_token * config().shape.max_positions;
    pool_->slot_tokens = config().shape.max_positions;
  }

  absl::Status AllocateCache(const CacheOptions& options) override {
    if (options.max_sequences < 1 || options.max_bytes < 0) {
      return absl::InvalidArgumentError("the cache needs max_sequences >= 1 and max_bytes >= 0");
    }
    const int64_t per_slot = LmSlots::BytesPerSlot(config(), dtype());
    const int64_t fit = per_slot == 0 ? options.max_sequences
                                      : std::min<int64_t>(options.max_sequences, options.max_bytes / per_slot);
    if (fit < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "one sequence slot needs ", per_slot, " bytes (", config().shape.max_positions,
          " positions of keys and values, and the metric sums); the cache budget is ", options.max_bytes));
    }
    absl::MutexLock lock(&pool_->mu);
    if (pool_->capacity > 0) return absl::FailedPreconditionError("the cache is already allocated");
    auto allocated = Guarded<bool>("allocating the KV cache", [&] {
      pool_->slots = LmSlots(config(), static_cast<int>(fit), net_->parameters().front().options());
      return true;
    });
    if (!allocated.ok()) return allocated.status();
    pool_->capacity = static_cast<int>(fit);
    if (config().decode.cuda_graphs && device_.is_cuda()) {
      graphs_ = std::make_unique<DecodeGraphs>(pool_->capacity, device_, /*capture=*/true);
    }
    pool_->Publish();
    return absl::OkStatus();
  }

  CacheUsage cache_usage() const override {
    absl::MutexLock lock(&pool_->usage_mu);
    return pool_->usage;
  }

  int free_slots() const override {
    absl::MutexLock lock(&pool_->usage_mu);
    return pool_->usage.slots - pool_->usage.slots_used;
  }

  absl::StatusOr<std::vector<Logits>> Prefill(
      absl::Span<const std::vector<int32_t>> prompts,
      std::vector<std::unique_ptr<Sequence>>* sequences,
      std::vector<std::vector<LayerStats>>* stats, PromptScoring* scoring,
      DeviceSampling* sampling) override {
    std::vector<std::vector<int32_t>> rows(prompts.begin(), prompts.end());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " is empty"));
      ELLIPTICAL_RETURN_IF_ERROR(CheckTokens(rows[i], i));
    }
    std::vector<std::unique_ptr<Sequence>> started;
    absl::StatusOr<std::vector<Logits>> logits;
    std::vector<std::vector<float>> scored;
    std::vector<DrawnToken> drawn;
    {
      absl::MutexLock lock(&pool_->mu);
      const int first = static_cast<int>(pool_->owners.size());
      if (pool_->capacity - first < static_cast<int>(rows.size())) {
        return absl::ResourceExhaustedError(absl::StrCat(
            rows.size(), " prompts, but ", pool_->capacity - first, " of ", pool_->capacity,
            " cache slots are free", pool_->capacity == 0 ? " (AllocateCache was not called)" : ""));
      }
      logits = Guarded<std::vector<Logits>>("prefill", [&] {
        auto [tokens, lengths] = Batch(rows);
        const bool prefix = config().scale_mode == ScaleMode::kPrefix;
        LmCache cache;
        std::vector<LayerTrace> trace;
        torch::Tensor hidden = net_->Hidden(tokens, lengths, config().scale_mode,
                                            prefix ? &cache : nullptr, stats ? &trace : nullptr);
        if (stats) *stats = SummariseTrace(trace, static_cast<int64_t>(rows.size()));
        // The output layer runs where logits are used: each row's last real position, and every
        // position of the rows that score their prompt. Every row's next-token logits come from
        // the same (B, C) product, scored or not, so scoring changes none of them.
        if (scoring) scored = ScorePrompts(hidden, tokens, rows, scoring->wanted);
        if (prefix) pool_->slots.Write(first, cache);
        return Deliver(net_->Head(LastHidden(hidden, lengths)), Identity(rows.size()), sampling, &drawn);
      });
      if (!logits.ok()) return logits.status();
      for (size_t b = 0; b < rows.size(); ++b) {
        pool_->live_tokens += static_cast<int64_t>(rows[b].size());
        auto seq = std::make_unique<LmSequence>(pool_, std::move(rows[b]), first + static_cast<int>(b));
        pool_->owners.push_back(seq.get());
        started.push_back(std::move(seq));
      }
      pool_->Publish();
    }
    // Outside the lock: whatever `sequences` held before is released here.
    *sequences = std::move(started);
    if (scoring) scoring->logprobs = std::move(scored);
    if (sampling) sampling->drawn = std::move(drawn);
    return logits;
  }

  absl::StatusOr<std::vector<Logits>> Step(absl::Span<Sequence* const> sequences,
                                           absl::Span<const int32_t> tokens,
                                           DeviceSampling* sampling) override {
    if (sequences.size() != tokens.size()) {
      return absl::InvalidArgumentError("Step needs one token per sequence");
    }
    std::vector<LmSequence*> seqs;
    for (size_t i = 0; i < sequences.size(); ++i) {
      seqs.push_back(static_cast<LmSequence*>(sequences[i]));
      if (seqs.back()->pool != pool_) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " belongs to another model"));
      }
      if (seqs.back()->length() + 1 > config().shape.max_positions) {
        return absl::OutOfRangeError(absl::StrCat("sequence ", i, " reached the model's ",
                                                  config().shape.max_positions, " positions"));
      }
      ELLIPTICAL_RETURN_IF_ERROR(CheckTokens({tokens[i]}, i));
    }
    if (seqs.empty()) return std::vector<Logits>();
    absl::MutexLock lock(&pool_->mu);
    std::vector<int> slots;
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (seqs[i]->damaged) {
        return absl::InternalError(absl::StrCat("sequence ", i, " lost its cache in an earlier failure"));
      }
      slots.push_back(seqs[i]->slot);
    }
    std::vector<int> sorted = slots;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return absl::InvalidArgumentError("Step was given the same sequence twice");
    }
    std::vector<DrawnToken> drawn;
    auto logits = Guarded<std::vector<Logits>>("decode step", [&] {
      if (config().scale_mode == ScaleMode::kSegment) {
        return Deliver(StepSegment(seqs, tokens), Identity(seqs.size()), sampling, &drawn);
      }
      std::vector<int> order;
      const bool compact = sorted.back() + 1 == static_cast<int>(seqs.size());
      if (compact && graphs_) return StepGraph(seqs, tokens, slots, sampling, &drawn);
      torch::Tensor out = StepPrefix(seqs, tokens, slots, compact, &order);
      return Deliver(out, order, sampling, &drawn);
    });
    if (!logits.ok()) {
      for (LmSequence* s : seqs) s->damaged = config().scale_mode == ScaleMode::kPrefix;
      return logits.status();
    }
    for (size_t i = 0; i < seqs.size(); ++i) seqs[i]->tokens.push_back(tokens[i]);
    pool_->live_tokens += static_cast<int64_t>(seqs.size());
    pool_->Publish();
    if (sampling) sampling->drawn = std::move(drawn);
    return logits;
  }

  absl::StatusOr<std::vector<float>> TokenLogProbs(absl::Span<const int32_t> tokens,
                                                   ScaleMode mode) override {
    std::vector<int32_t> row(tokens.begin(), tokens.end());
    if (row.size() < 2) return absl::InvalidArgumentError("need at least two tokens to score");
    ELLIPTICAL_RETURN_IF_ERROR(CheckTokens(row, 0));
    return Guarded<std::vector<float>>("scoring", [&] {
      auto [batch, lengths] = Batch({row});
      return ScorePrompts(net_->Hidden(batch, lengths, mode), batch, {row}, {true})[0];
    });
  }

  int64_t CacheBytesPerToken() const override {
    const LmShape& s = config().shape;
    const int64_t element = c10::elementSize(dtype());
    return 2LL * s.num_layers * s.num_heads * s.head_dim * element;
  }

  const ModelDescription& description() const override { return description_; }
  const LmConfig& config() const override { return net_->config(); }
  bool samples_on_device() const override { return samples_on_device_; }

 private:
  torch::ScalarType dtype() const { return net_->parameters().front().scalar_type(); }

  absl::Status CheckTokens(const std::vector<int32_t>& tokens, size_t index) const {
    if (static_cast<int>(tokens.size()) > config().shape.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", index, " has ", tokens.size(),
                                                     " tokens; the model takes at most ",
                                                     config().shape.max_positions));
    }
    for (int32_t t : tokens) {
      if (t < 0 || t >= config().vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", index, " holds token id ", t,
                                                       ", outside the vocabulary [0, ",
                                                       config().vocab_size, ")"));
      }
    }
    return absl::OkStatus();
  }

  // Right-padded (B, L) int64 tokens and (B) lengths on the device.
  std::pair<torch::Tensor, torch::Tensor> Batch(const std::vector<std::vector<int32_t>>& rows) const {
    size_t longest = 0;
    for (const auto& r : rows) longest = std::max(longest, r.size());
    torch::Tensor tokens = torch::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)},
                                        torch::kInt64);
    torch::Tensor lengths = torch::empty({static_cast<int64_t>(rows.size())}, torch::kInt64);
    auto t = tokens.accessor<int64_t, 2>();
    for (size_t b = 0; b < rows.size(); ++b) {
      for (size_t i = 0; i < rows[b].size(); ++i) t[b][i] = rows[b][i];
      lengths[b] = static_cast<int64_t>(rows[b].size());
    }
    return {tokens.to(device_), lengths.to(device_)};
  }

  // hidden (B, L, C) -> each row's hidden state at its last real token (B, C).
  static torch::Tensor LastHidden(const torch::Tensor& hidden, const torch::Tensor& lengths) {
    const int64_t b = hidden.size(0), c = hidden.size(2);
    torch::Tensor index = (lengths - 1).view({b, 1, 1}).expand({b, 1, c});
    return hidden.gather(1, index).squeeze(1);
  }

  // For each wanted row b of `rows.size()` (the prompts of the padded `tokens` (B, L) whose last
  // hidden states `hidden` (B, L, C) a forward gave), log p(token t | tokens < t) for
  // t = 1..len-1: the float32 log-softmax at t-1, gathered at token t. Only those rows go through
  // the output layer; the others get nothing, and cost nothing.
  std::vector<std::vector<float>> ScorePrompts(const torch::Tensor& hidden, const torch::Tensor& tokens,
                                               const std::vector<std::vector<int32_t>>& rows,
                                               const std::vector<bool>& wanted) {
    std::vector<std::vector<float>> out(rows.size());
    std::vector<int64_t> picked;
    for (size_t b = 0; b < rows.size(); ++b) {
      if (b < wanted.size() && wanted[b] && rows[b].size() >= 2) picked.push_back(static_cast<int64_t>(b));
    }
    if (picked.empty() || tokens.size(1) < 2) return out;
    const int64_t steps = tokens.size(1) - 1;
    torch::Tensor index = torch::tensor(picked, torch::kInt64).to(tokens.device());
    // (R, L-1, V) float32 logits. Padding positions are scored too (garbage) and dropped below:
    // one batched kernel beats R ragged ones.
    torch::Tensor x = net_->Head(hidden.index_select(0, index).narrow(1, 0, steps));
    torch::Tensor next = tokens.index_select(0, index).narrow(1, 1, steps).unsqueeze(2);  // (R, L-1, 1)
    torch::Tensor logp = (x.gather(2, next).squeeze(2) - x.logsumexp(2)).to(torch::kCPU).contiguous();
    const float* p = logp.data_ptr<float>();
    for (size_t r = 0; r < picked.size(); ++r) {
      const size_t n = rows[picked[r]].size() - 1;
      out[picked[r]].assign(p + r * steps, p + r * steps + n);
    }
    return out;
  }

  static std::vector<int> Identity(size_t n) {
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    return order;
  }

  // The sequences of a compact step in slot order: row r of its batch is sequence order[r], in
  // slot r, so the step reads plain views of slots 0..n-1.
  static std::vector<int> SlotOrder(const std::vector<int>& slots) {
    std::vector<int> order = Identity(slots.size());
    std::sort(order.begin(), order.end(), [&](int a, int b) { return slots[a] < slots[b]; });
    return order;
  }

  // DrawTokens' params (4, R) on the host for rows `which` of a batch whose row r is request
  // order[r]; rows that did not ask are greedy (zeros).
  static torch::Tensor DrawParams(const std::vector<int64_t>& which, const std::vector<int>& order,
                                  const DeviceSampling* sampling, bool* any_sampled) {
    torch::Tensor params = torch::zeros({4, static_cast<int64_t>(which.size())}, torch::kFloat64);
    auto p = params.accessor<double, 2>();
    *any_sampled = false;
    for (size_t j = 0; j < which.size(); ++j) {
      const size_t request = static_cast<size_t>(order[which[j]]);
      if (sampling == nullptr || !sampling->wants(request)) continue;
      const DeviceDraw& d = sampling->rows[request];
      p[kDrawTemperature][j] = d.temperature;
      p[kDrawTopK][j] = d.top_k;
      p[kDrawTopP][j] = d.top_p;
      p[kDrawUniform][j] = d.u;
      *any_sampled = *any_sampled || d.temperature > 0;
    }
    return params;
  }

  // What a forward's next-token logits (R, V) on the device become: row r belongs to request
  // order[r]. The rows `sampling` asks for are drawn here (DrawTokens; or taken from `drawn_rows`
  // (3, R), when a graph step already drew every row) and come back as (id, logprob) in `drawn`,
  // all of them in one (3, R) copy; only the other rows' logits are copied to the host. Indexed
  // by request; a drawn request's Logits stay empty.
  std::vector<Logits> Deliver(const torch::Tensor& logits, const std::vector<int>& order,
                              const DeviceSampling* sampling, std::vector<DrawnToken>* drawn,
                              const torch::Tensor& drawn_rows = torch::Tensor()) const {
    const size_t n = order.size();
    std::vector<int64_t> draw_rows, logit_rows;
    for (size_t r = 0; r < n; ++r) {
      const bool wanted = sampling != nullptr && sampling->wants(static_cast<size_t>(order[r]));
      (wanted ? draw_rows : logit_rows).push_back(static_cast<int64_t>(r));
    }
    const auto rows_of = [&](const std::vector<int64_t>& which) {
      return which.size() == n ? logits : logits.index_select(0, torch::tensor(which, torch::kInt64).to(device_));
    };
    std::vector<Logits> out(n);
    drawn->assign(n, DrawnToken());
    if (!draw_rows.empty()) {
      const int64_t r = static_cast<int64_t>(draw_rows.size());
      torch::Tensor result;
      if (drawn_rows.defined()) {
        result = draw_rows.size() == n ? drawn_rows
                                       : drawn_rows.index_select(1, torch::tensor(draw_rows, torch::kInt64).to(device_));
      } else {
        bool any_sampled = false;
        torch::Tensor params = DrawParams(draw_rows, order, sampling, &any_sampled);
        result = DrawTokens(rows_of(draw_rows), params.to(device_), any_sampled);
      }
      result = result.to(torch::kCPU).contiguous();
      auto got = result.accessor<double, 2>();
      for (int64_t j = 0; j < r; ++j) {
        (*drawn)[order[draw_rows[j]]] = {static_cast<int32_t>(got[kDrawnId][j]),
                                         static_cast<float>(got[kDrawnLogprob][j]),
                                         got[kDrawnUsedUniform][j] != 0};
      }
    }
    if (!logit_rows.empty()) {
      std::vector<Logits> rows = ToVectors(rows_of(logit_rows));
      for (size_t j = 0; j < logit_rows.size(); ++j) out[order[logit_rows[j]]] = std::move(rows[j]);
    }
    return out;
  }

  static std::vector<Logits> ToVectors(const torch::Tensor& rows) {  // (B, V)
    torch::Tensor cpu = rows.to(torch::kCPU, torch::kFloat32).contiguous();
    std::vector<Logits> out(cpu.size(0));
    const float* p = cpu.data_ptr<float>();
    for (int64_t b = 0; b < cpu.size(0); ++b) out[b].assign(p + b * cpu.size(1), p + (b + 1) * cpu.size(1));
    return out;
  }

  // The reference estimate cannot be cached: every step recomputes every sequence.
  // Next-token logits (B, V) on the device, row b for seqs[b].
  torch::Tensor StepSegment(const std::vector<LmSequence*>& seqs, absl::Span<const int32_t> tokens) {
    std::vector<std::vector<int32_t>> rows;
    for (size_t i = 0; i < seqs.size(); ++i) {
      rows.push_back(seqs[i]->tokens);
      rows.back().push_back(tokens[i]);
    }
    auto [batch, lengths] = Batch(rows);
    return net_->Head(LastHidden(net_->Hidden(batch, lengths, ScaleMode::kSegment), lengths));
  }

  // `compact`: the step's slots are exactly 0..n-1, so it decodes on views of the slots in slot
  // order and copies nothing; otherwise it gathers its slots and writes the new token back.
  // Returns next-token logits (n, V) on the device; row r is seqs[(*order)[r]].
  torch::Tensor StepPrefix(const std::vector<LmSequence*>& seqs, absl::Span<const int32_t> tokens,
                           const std::vector<int>& slots, bool compact, std::vector<int>* order_out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_->mu) {
    const int n = static_cast<int>(seqs.size());
    std::vector<int>& order = *order_out;  // row r of the batch is seqs[order[r]]
    order = compact ? SlotOrder(slots) : Identity(n);
    std::vector<int64_t> lengths, next, rows;
    int64_t longest = 0;
    for (int i : order) {
      lengths.push_back(seqs[i]->length());
      next.push_back(tokens[i]);
      rows.push_back(slots[i]);
      longest = std::max(longest, lengths.back());
    }
    torch::Tensor pos = torch::tensor(lengths, torch::kInt64).to(device_);
    torch::Tensor slot_index = compact ? torch::Tensor() : torch::tensor(rows, torch::kInt64).to(device_);
    LmSlots& cache = pool_->slots;
    LmCache batch = compact ? cache.View(n, longest + 1) : cache.Gather(slot_index, longest + 1);
    batch.lengths = pos;
    torch::Tensor logits = net_->Decode(torch::tensor(next, torch::kInt64).to(device_), &batch);
    if (!compact) cache.WriteStep(slot_index, batch, pos);
    return logits;
  }

  // A compact step at a fixed shape (model/nets/decode_graphs.h): its bucket's CUDA graph
  // replayed, every row's token drawn inside it.
  std::vector<Logits> StepGraph(const std::vector<LmSequence*>& seqs, absl::Span<const int32_t> tokens,
                                const std::vector<int>& slots, const DeviceSampling* sampling,
                                std::vector<DrawnToken>* drawn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_->mu) {
    const int n = static_cast<int>(seqs.size());
    const std::vector<int> order = SlotOrder(slots);
    std::vector<int64_t> next, lengths, all;
    for (int r = 0; r < n; ++r) {
      next.push_back(tokens[order[r]]);
      lengths.push_back(seqs[order[r]]->length());
      all.push_back(r);
    }
    bool any_sampled = false;
    torch::Tensor params = DrawParams(all, order, sampling, &any_sampled);
    FixedStepOutputs out = graphs_->Step(*net_, pool_->slots, next, lengths, params);
    return Deliver(out.logits, order, sampling, drawn, out.drawn);
  }

  DecoderLm net_;
  const torch::Device device_;
  const ModelDescription description_;
  const std::shared_ptr<const Float32MathPolicy::Vote> tf32_vote_;  // model/io/precision.h
  const std::shared_ptr<SlotPool> pool_;
  const bool samples_on_device_;
  std::unique_ptr<DecodeGraphs> graphs_ ABSL_GUARDED_BY(pool_->mu);  // "cuda_graphs" on a CUDA model
};

}  // namespace

absl::StatusOr<std::unique_ptr<LanguageModel>> LanguageModel::Load(const std::string& directory,
                                                                    const LoadOptions& options) {
  ELLIPTICAL_ASSIGN_OR_RETURN(LmConfig config, ReadLmConfig(directory));
  ELLIPTICAL_ASSIGN_OR_RETURN(Placement placement,
                              ResolvePlacement(config.runtime, options, ModelFamily::kLanguageModel));
  return GuardLoad<std::unique_ptr<LanguageModel>>(
      directory, [&]() -> absl::StatusOr<std::unique_ptr<LanguageModel>> {
        DecoderLm net(config);
        ELLIPTICAL_RETURN_IF_ERROR(PlaceAndLoad(*net, placement, config.runtime.weights_path));
        ModelDescription d = DescribeModule(ModelFamily::kLanguageModel, placement, config.attention, *net);
        d.num_layers = config.shape.num_layers;
        d.num_heads = config.shape.num_heads;
        d.embed_dim = config.shape.d_model;
        if (config.decode.cuda_graphs && !placement.device.is_cuda()) {
          d.dtype_reason += "; cuda_graphs has no effect on the CPU (decode steps run eagerly)";
        }
        return std::unique_ptr<LanguageModel>(
            new DecoderLanguageModel(std::move(net), placement.device, std::move(d), placement.tf32_vote));
      });
}

}  // namespace elliptical::model
