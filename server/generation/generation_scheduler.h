// Iteration-level ("continuous") batching for one language model. One thread drives the model:
// between decode steps it admits waiting sequences (their prompts prefilled as one batch) and
// drops finished, cancelled or expired ones, so the running batch changes every step and no
// sequence waits for another to finish. Each token is handed to its request's stream as soon as
// it is sampled.
//
// Memory: the model's KV cache is allocated once, at load, as slots of a whole context each
// (model/api/language_model.h). A sequence is admitted when a slot is free and holds it until it
// finishes; a request longer than the context is refused. The waiting queue is bounded: beyond
// it, RESOURCE_EXHAUSTED.
//
// Nothing here blocks on a client: tokens go into the request's GenerationStream, whose reader
// is told through a callback (the gRPC reactor writes them when the wire is ready).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model/api/language_model.h"
#include "server/generation/sampler.h"
#include "server/generation/tokenizer.h"

namespace elliptical::server {

struct GenerationLimits {
  int max_running = 16;             // sequences decoded together (cache slots wanted)
  int max_waiting = 4096;           // accepted, waiting for a slot
  int64_t max_cache_bytes = 512LL << 20;
  int default_max_new_tokens = 64;
  int max_new_tokens_limit = 1024;  // larger requests are INVALID_ARGUMENT
};

// How a prompt becomes token ids: Tokenizer::Encode(prompt), with no beginning-of-sequence
// token, as the training code encodes its documents (training/evaluate.py lm_stream: each verse
// is sp.encode(verse) followed by the end-of-sequence id, and no BOS anywhere).
struct GenerationParams {
  std::string prompt;
  int max_new_tokens = 0;  // 0: the default (unless score_only)
  SamplingParams sampling;
  uint64_t seed = 0;       // 0: random
  std::vector<std::string> stop;
  absl::Time deadline = absl::InfiniteFuture();

  // Scoring the prompt (perplexity, OpenAI's echo + logprobs). With prompt_logprobs, the
  // stream's first event, before any generated token, is the prompt-scores event
  // (Event::prompt_scores): every prompt token with log p(token | the tokens before it) from
  // the prefill's own forward over the prompt. Generation then goes on as usual. Only requests
  // that ask pay for it.
  bool prompt_logprobs = false;
  // A pure scoring request: the prompt is scored (prompt_logprobs is implied) and nothing is
  // generated. max_new_tokens must be 0 (here it does not mean the default). The stream holds
  // the prompt-scores event, then the final event (FinishReason::kLength, 0 generated tokens,
  // the score summary). It queues, prefills (batched with generation) and holds a cache slot
  // for the prefill only, under the same limits: prompt length, deadline, cancel, queue bound.
  bool score_only = false;
  // score_only only: appends the tokenizer's end-of-sequence token to the prompt, so the text is
  // scored as a whole document, its ending included, as evaluate.py's perplexity() scores
  // held-out verses. INVALID_ARGUMENT when the tokenizer has none.
  bool append_eos = false;
};

enum class FinishReason { kLength, kEndOfSequence, kStopSequence };

// One request's channel from the scheduler thread to whoever writes its RPC stream.
// Thread-safety: every method may be called from any thread.
class GenerationStream {
 public:
  // One prompt token and its score.
  struct ScoredToken {
    int32_t id = 0;
    // What this token adds to the prompt's decoded text: concatenated, they give the text as
    // the tokenizer decodes the whole prompt (the first token's word-boundary space dropped, an
    // appended end-of-sequence token adds ""). Exact for tokenizers without byte fallback; with
    // it, a character split over several byte tokens may come as its pieces' text.
    std::string text;
    std::string piece;  // the tokenizer's piece for `id` (Tokenizer::IdToPiece), e.g. "▁said"
    // log p(id | the prompt tokens before it), natural log, from float32 log-softmax. The first
    // token has none: has_logprob false and logprob NaN.
    bool has_logprob = false;
    float logprob = 0;
  };

  // One of the most likely tokens at a position (SamplingParams::top_logprobs), with the text
  // it would have added there and its logprob under the distribution the token was drawn from.
  struct TopToken {
    int32_t id = 0;
    std::string text;
    float logprob = 0;
  };

  struct Event {
    bool has_token = false;
    int32_t token_id = 0;
    std::string text;
    float logprob = 0;
    // With a token, when the request asked (SamplingParams::top_logprobs = N): the N most likely
    // tokens, most likely first, then the chosen one if it is not among them.
    std::vector<TopToken> top_logprobs;
    bool final = false;  // the last event: summary fields and status are set
    absl::Status status;
    FinishReason reason = FinishReason::kLength;
    int prompt_tokens = 0;
    int generated_tokens = 0;
    absl::Duration time_to_first_token;  // score_only: until the scores
    absl::Duration total;

    // The prompt-scores event (GenerationParams::prompt_logprobs): has_token false, text empty
    // (a reader that knows nothing of scores skips it), one entry per prompt token in order.
    bool has_prompt_scores = false;
    std::vector<ScoredToken> prompt_scores;
    // On the final event of a request that asked for scores (0 otherwise, and when it ended
    // before its prefill): how many prompt tokens have a logprob (prompt_tokens - 1) and the
    // sum of their logprobs. The text's perplexity is exp(-scored_logprob_sum / scored_tokens)
    // (Perplexity below), per token, over every token but the first.
    int scored_tokens = 0;
    double scored_logprob_sum = 0;
    bool score_only = false;  // on the final event: the request was GenerationParams::score_only
  };

  // exp(-logprob_sum / scored_tokens); NaN when no token was scored (a one-token prompt).
  static double Perplexity(double logprob_sum, int scored_tokens);

  // Moves the events queued so far into `out` (appending); false when there were none.
  bool Take(std::deque<Event>* out);
  // Waits up to `timeout` for the next event (for tests and simple readers).
  bool Next(absl::Duration timeout, Event* event);
  // `on_ready` runs once now and then on the scheduler thread after each event is queued; it
  // must not block. The reader clears it (nullptr) before it goes away; once that returns, it
  // is never called again.
  void SetListener(std::function<void()> on_ready);
  // The client went away: the scheduler frees the sequence's slot at its next step.
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  friend class GenerationScheduler;
  void Push(Event event);

  mutable absl::Mutex mu_;
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  absl::Mutex listener_mu_;  // held while the listener runs, so clearing it waits for a call
  std::function<void()> on_ready_ ABSL_GUARDED_BY(listener_mu_);
  std::atomic<bool> cancelled_{false};
};

// Optional observers of a GenerationScheduler, called on its thread: its start, every request's
// final event, and the attention statistics of a `stats_sample_rate` fraction of prefill batches.
struct GenerationObservers {
  // Once, before the thread's first step: where the thread binds per-thread model state (a CUDA
  // model's own stream, model/api/runtime.h), which the scheduler itself knows nothing of.
  std::function<void()> on_thread_start;
  std::function<void(const GenerationStream::Event&)> on_finish;
  double stats_sample_rate = 0;
  std::function<void(const std::vector<model::LayerStats>&)> on_stats;
};

class GenerationScheduler {
 public:
  GenerationScheduler(std::string name, std::shared_ptr<model::LanguageModel> model,
                      std::unique_ptr<Tokenizer> tokenizer, GenerationLimits limits,
                      GenerationObservers observers = {});
  ~GenerationScheduler();

  // `model` has its cache allocated (LanguageModel::AllocateCache); at most that many sequences
  // run at once.
  //
  // Validates and queues a request. INVALID_ARGUMENT (empty prompt, too long: prompt tokens,
  // the appended end-of-sequence token and max_new_tokens beyond the model's context; bad
  // parameters: score_only with max_new_tokens > 0, append_eos without score_only),
  // RESOURCE_EXHAUSTED (queue full), UNAVAILABLE (shutting down).
  absl::StatusOr<std::shared_ptr<GenerationStream>> Submit(const GenerationParams& params);

  // Stops accepting; every queued and running sequence still completes. Idempotent.
  void Shutdown();

  struct Load {
    int running = 0;
    int waiting = 0;
    model::CacheUsage cache;
  };
  Load load() const;

  const model::LanguageModel& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  struct Sequence;

  void Work();
  void Admit(std::vector<std::unique_ptr<Sequence>>* admitted);
  // Samples `s`'s next token from the model's `logits`, with its penalties and bias applied.
  SampledToken Draw(Sequence* s, const std::vector<float>& logits);
  // Where the model samples on its device (LanguageModel::samples_on_device), the rows that need
  // nothing but the pick (no penalties, bias or top_logprobs) ask it to: `draws` gets one request
  // per sequence, with u drawn from a copy of the sequence's engine, kept in `engines` (the
  // engine as it is after drawing u). False when no row asks.
  bool PlanDeviceDraws(const std::vector<Sequence*>& seqs, model::LanguageModel::DeviceSampling* draws,
                       std::vector<std::mt19937_64>* engines) const;
  // The token for row i: drawn on the device when the row asked (its engine then advances as
  // the host sampler's would have), else sampled from its logits.
  SampledToken Next(Sequence* s, size_t i, const std::vector<float>& logits,
                    const model::LanguageModel::DeviceSampling& draws, std::vector<std::mt19937_64>* engines);
  // Emits `token` for `s`; returns true when the sequence is finished.
  bool Emit(Sequence* s, const SampledToken& token);
  // Pushes `s`'s prompt-scores event and keeps the sums for its final event.
  void EmitPromptScores(Sequence* s, const std::vector<float>& logprobs);
  void Prefill(std::vector<std::unique_ptr<Sequence>> admitted);
  void Step();
  void Finish(Sequence* s, absl::Status status, FinishReason reason);

  const std::string name_;
  const std::shared_ptr<model::LanguageModel> model_;
  const std::unique_ptr<Tokenizer> tokenizer_;
  const GenerationLimits limits_;
  const GenerationObservers observers_;
  std::mt19937_64 sample_rng_{0x5eed};  // the worker thread's only

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<std::unique_ptr<Sequence>> waiting_ ABSL_GUARDED_BY(mu_);
  int running_count_ ABSL_GUARDED_BY(mu_) = 0;
  const int max_running_;  // the limit, or the cache's slots if fewer
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Sequence>> running_;  // the worker thread's only
  std::thread worker_;
};

}  // namespace elliptical::server
