#include "server/generation/generation_scheduler.h"

#include <cmath>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/exception_guard.h"
#include "server/generation/text_stream.h"
#include "server/log.h"

namespace elliptical::server {

bool GenerationStream::Take(std::deque<Event>* out) {
  absl::MutexLock lock(&mu_);
  if (events_.empty()) return false;
  for (Event& e : events_) out->push_back(std::move(e));
  events_.clear();
  return true;
}

bool GenerationStream::Next(absl::Duration timeout, Event* event) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (events_.empty()) return false;
  *event = std::move(events_.front());
  events_.pop_front();
  return true;
}

void GenerationStream::SetListener(std::function<void()> on_ready) {
  absl::MutexLock lock(&listener_mu_);
  on_ready_ = std::move(on_ready);
  if (on_ready_) on_ready_();
}

void GenerationStream::Push(Event event) {
  {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  absl::MutexLock lock(&listener_mu_);
  if (on_ready_) on_ready_();
}

double GenerationStream::Perplexity(double logprob_sum, int scored_tokens) {
  if (scored_tokens <= 0) return std::numeric_limits<double>::quiet_NaN();
  return std::exp(-logprob_sum / scored_tokens);
}

namespace {

// Each token's share of the decoded prompt, in O(n) decodes: decoding a token after its
// predecessor (as TextStream streams after the prompt's last token) keeps its word-boundary
// space, which a decoder drops only at the start of a text.
std::vector<GenerationStream::ScoredToken> PromptTokens(const Tokenizer& tokenizer,
                                                        const std::vector<int32_t>& ids) {
  std::vector<GenerationStream::ScoredToken> out(ids.size());
  std::string previous;  // Decode({ids[i-1]})
  for (size_t i = 0; i < ids.size(); ++i) {
    GenerationStream::ScoredToken& t = out[i];
    t.id = ids[i];
    t.piece = tokenizer.IdToPiece(ids[i]);
    t.logprob = std::numeric_limits<float>::quiet_NaN();
    std::string alone = tokenizer.Decode({ids[i]});
    if (i == 0) {
      t.text = alone;
    } else {
      const std::string pair = tokenizer.Decode({ids[i - 1], ids[i]});
      t.text = absl::StartsWith(pair, previous) ? pair.substr(previous.size()) : alone;
    }
    previous = std::move(alone);
  }
  return out;
}

}  // namespace

struct GenerationScheduler::Sequence {
  std::shared_ptr<GenerationStream> stream;
  std::vector<int32_t> prompt;
  bool score = false;       // prompt_logprobs or score_only
  bool score_only = false;  // nothing to generate
  int scored_tokens = 0;
  double scored_logprob_sum = 0;
  int max_new_tokens = 0;
  SamplingParams sampling;
  TokenHistory history;  // kept only when a penalty needs it
  std::mt19937_64 rng;
  absl::Time deadline;
  absl::Time arrived;
  std::unique_ptr<model::LanguageModel::Sequence> state;
  std::unique_ptr<TextStream> text;
  int generated = 0;
  int32_t pending = 0;  // sampled, not yet fed to the model
  absl::Duration time_to_first_token;
  bool finished = false;
};

GenerationScheduler::GenerationScheduler(std::string name, std::shared_ptr<model::LanguageModel> model,
                                         std::unique_ptr<Tokenizer> tokenizer, GenerationLimits limits,
                                         GenerationObservers observers)
    : name_(std::move(name)),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      limits_(limits),
      observers_(std::move(observers)),
      max_running_(std::max(1, std::min(limits.max_running, model_->cache_usage().slots))) {
  worker_ = std::thread([this] { Work(); });
}

GenerationScheduler::~GenerationScheduler() { Shutdown(); }

void GenerationScheduler::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.Signal();
  }
  if (worker_.joinable()) worker_.join();
}

GenerationScheduler::Load GenerationScheduler::load() const {
  absl::MutexLock lock(&mu_);
  return {running_count_, static_cast<int>(waiting_.size()), model_->cache_usage()};
}

absl::StatusOr<std::shared_ptr<GenerationStream>> GenerationScheduler::Submit(const GenerationParams& p) {
  if (p.prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (p.score_only && p.max_new_tokens != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_new_tokens is ", p.max_new_tokens, "; a score_only request generates nothing (0)"));
  }
  if (p.append_eos && !p.score_only) {
    return absl::InvalidArgumentError(
        "append_eos is for score_only requests: generation cannot continue after the end of sequence");
  }
  if (p.append_eos && tokenizer_->eos_id() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", name_, "'s tokenizer has no end-of-sequence token to append"));
  }
  if (p.max_new_tokens < 0 || p.max_new_tokens > limits_.max_new_tokens_limit) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens is ", p.max_new_tokens,
                                                   "; this server allows 1 to ",
                                                   limits_.max_new_tokens_limit));
  }
  if (absl::Status s = CheckSamplingParams(p.sampling); !s.ok()) return s;
  const int vocab = model_->config().vocab_size;
  for (const auto& [id, bias] : p.sampling.logit_bias) {
    if (id >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("logit_bias: token id ", id, " is beyond model ", name_,
                                                     "'s vocabulary of ", vocab, " tokens"));
    }
  }
  auto s = std::make_unique<Sequence>();
  s->prompt = tokenizer_->Encode(p.prompt);
  if (s->prompt.empty()) return absl::InvalidArgumentError("the prompt encodes to no tokens");
  if (p.append_eos) s->prompt.push_back(tokenizer_->eos_id());
  s->score = p.prompt_logprobs || p.score_only;
  s->score_only = p.score_only;
  s->max_new_tokens = p.score_only           ? 0
                      : p.max_new_tokens > 0 ? p.max_new_tokens
                                             : limits_.default_max_new_tokens;
  const int context = model_->config().shape.max_positions;
  const int total = static_cast<int>(s->prompt.size()) + s->max_new_tokens;
  if (total > context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt has ", s->prompt.size(), " tokens", p.append_eos ? " (with end of sequence)" : "",
        "; with max_new_tokens ", s->max_new_tokens, " that is ", total,
        ", beyond the model's context of ", context, " tokens"));
  }
  s->sampling = p.sampling;
  if (p.sampling.repetition_penalty != 1) s->history.prompt.insert(s->prompt.begin(), s->prompt.end());
  s->rng.seed(p.seed != 0 ? p.seed : std::random_device{}());
  s->deadline = p.deadline;
  s->arrived = absl::Now();
  s->text = std::make_unique<TextStream>(tokenizer_.get(), p.stop, s->prompt);
  s->stream = std::make_shared<GenerationStream>();
  std::shared_ptr<GenerationStream> stream = s->stream;

  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError(absl::StrCat("model ", name_, " is shutting down"));
  if (static_cast<int>(waiting_.size()) >= limits_.max_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "model ", name_, " is overloaded: ", waiting_.size(),
        " generations are waiting for a cache slot (limit generation.max_waiting); retry later "
        "with backoff"));
  }
  waiting_.push_back(std::move(s));
  cv_.Signal();
  return stream;
}

void GenerationScheduler::Finish(Sequence* s, absl::Status status, FinishReason reason) {
  GenerationStream::Event e;
  e.final = true;
  e.status = std::move(status);
  e.reason = reason;
  e.prompt_tokens = static_cast<int>(s->prompt.size());
  e.generated_tokens = s->generated;
  e.time_to_first_token = s->time_to_first_token;
  e.total = absl::Now() - s->arrived;
  e.scored_tokens = s->scored_tokens;
  e.scored_logprob_sum = s->scored_logprob_sum;
  e.score_only = s->score_only;
  // Text held back in case it began a stop sequence is released now, unless a stop matched:
  // then what is held is the stop text itself.
  if (e.status.ok() && reason != FinishReason::kStopSequence) e.text = s->text->Flush();
  if (observers_.on_finish) observers_.on_finish(e);
  // The cache slot goes back before the client hears of the end: a client that then sends its
  // next request finds the slot free.
  s->state.reset();
  s->finished = true;
  s->stream->Push(std::move(e));
}

SampledToken GenerationScheduler::Draw(Sequence* s, const std::vector<float>& logits) {
  if (!AdjustsLogits(s->sampling)) return Sample(logits, s->sampling, &s->rng);
  return Sample(AdjustedLogits(logits, s->sampling, s->history), s->sampling, &s->rng);
}

bool GenerationScheduler::PlanDeviceDraws(const std::vector<Sequence*>& seqs,
                                          model::LanguageModel::DeviceSampling* draws,
                                          std::vector<std::mt19937_64>* engines) const {
  if (!model_->samples_on_device()) return false;
  bool any = false;
  draws->rows.assign(seqs.size(), {});
  engines->resize(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    const Sequence& s = *seqs[i];
    if (s.score_only || AdjustsLogits(s.sampling) || s.sampling.top_logprobs > 0) continue;
    model::LanguageModel::DeviceDraw& d = draws->rows[i];
    d.wanted = true;
    d.temperature = s.sampling.temperature;
    d.top_k = s.sampling.top_k;
    d.top_p = s.sampling.top_p;
    if (s.sampling.temperature > 0) {
      // What std::discrete_distribution draws inside Sample(): one generate_canonical<double, 53>
      // of the engine. Drawn from a copy, kept only if the pick used it (a single candidate
      // left draws nothing), so the engine moves exactly as the host sampler moves it.
      (*engines)[i] = s.rng;
      d.u = std::generate_canonical<double, std::numeric_limits<double>::digits>((*engines)[i]);
    }
    any = true;
  }
  return any;
}

SampledToken GenerationScheduler::Next(Sequence* s, size_t i, const std::vector<float>& logits,
                                       const model::LanguageModel::DeviceSampling& draws,
                                       std::vector<std::mt19937_64>* engines) {
  // A model that left the row's draw out (one that ignores DeviceSampling) sent its logits.
  if (!draws.wants(i) || i >= draws.drawn.size()) return Draw(s, logits);
  const model::LanguageModel::DrawnToken& d = draws.drawn[i];
  if (d.used_uniform) s->rng = (*engines)[i];
  return SampledToken{d.id, d.logprob, {}};
}

bool GenerationScheduler::Emit(Sequence* s, const SampledToken& token) {
  if (s->generated == 0) s->time_to_first_token = absl::Now() - s->arrived;
  if (token.id == tokenizer_->eos_id()) {
    Finish(s, absl::OkStatus(), FinishReason::kEndOfSequence);
    return true;
  }
  GenerationStream::Event e;
  e.top_logprobs.reserve(token.top.size());
  if (s->sampling.top_logprobs > 0) {
    // Each alternative decoded after its predecessor, as TextStream decodes the chosen token: a
    // word-boundary space is kept, which a decoder drops only at the start of a text.
    const int32_t previous = s->generated > 0 ? s->pending : s->prompt.back();
    const std::string before = tokenizer_->Decode({previous});
    const auto text_after = [&](int32_t id) {
      std::string both = tokenizer_->Decode({previous, id});
      return absl::StartsWith(both, before) ? both.substr(before.size()) : tokenizer_->Decode({id});
    };
    bool chosen_listed = false;
    for (const auto& [id, logprob] : token.top) {
      e.top_logprobs.push_back({id, text_after(id), logprob});
      chosen_listed = chosen_listed || id == token.id;
    }
    // The chosen token always comes with its alternatives (as OpenAI lists it): N + 1 entries
    // when it is not among the N most likely.
    if (!chosen_listed) e.top_logprobs.push_back({token.id, text_after(token.id), token.logprob});
  }
  if (NeedsHistory(s->sampling)) ++s->history.output_counts[token.id];
  ++s->generated;
  s->pending = token.id;
  TextStream::Update update = s->text->Push(token.id);
  e.has_token = true;
  e.token_id = token.id;
  e.text = std::move(update.text);
  e.logprob = token.logprob;
  s->stream->Push(std::move(e));
  if (update.stopped) {
    Finish(s, absl::OkStatus(), FinishReason::kStopSequence);
  } else if (s->generated >= s->max_new_tokens) {
    Finish(s, absl::OkStatus(), FinishReason::kLength);
  }
  return s->finished;
}

void GenerationScheduler::EmitPromptScores(Sequence* s, const std::vector<float>& logprobs) {
  GenerationStream::Event e;
  e.has_prompt_scores = true;
  e.prompt_scores = PromptTokens(*tokenizer_, s->prompt);
  // logprobs[j] scores prompt token j + 1 (LanguageModel::PromptScoring).
  for (size_t j = 0; j < logprobs.size() && j + 1 < e.prompt_scores.size(); ++j) {
    GenerationStream::ScoredToken& t = e.prompt_scores[j + 1];
    t.has_logprob = true;
    t.logprob = logprobs[j];
    s->scored_logprob_sum += logprobs[j];
    ++s->scored_tokens;
  }
  s->stream->Push(std::move(e));
}

void GenerationScheduler::Admit(std::vector<std::unique_ptr<Sequence>>* admitted) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Sequence* s = it->get();
    if (s->stream->cancelled() || now >= s->deadline) {
      Finish(s, s->stream->cancelled()
                    ? absl::CancelledError("the client cancelled the request")
                    : absl::DeadlineExceededError(absl::StrCat(
                          "deadline exceeded while waiting for model ", name_,
                          "; the server is busy: allow a longer deadline or retry later")),
             FinishReason::kLength);
      it = waiting_.erase(it);
      continue;
    }
    ++it;
  }
  // FIFO, one slot each: every sequence may grow to the whole context, so none overtakes.
  const int free_slots = model_->free_slots();
  while (!waiting_.empty() && running_count_ + static_cast<int>(admitted->size()) < max_running_ &&
         static_cast<int>(admitted->size()) < free_slots) {
    admitted->push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  running_count_ += static_cast<int>(admitted->size());
}

void GenerationScheduler::Prefill(std::vector<std::unique_ptr<Sequence>> admitted) {
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& s : admitted) prompts.push_back(s->prompt);
  std::vector<std::unique_ptr<model::LanguageModel::Sequence>> states;
  const bool sampled = observers_.on_stats && observers_.stats_sample_rate > 0 &&
                       std::uniform_real_distribution<double>(0, 1)(sample_rng_) <
                           observers_.stats_sample_rate;
  std::vector<std::vector<model::LayerStats>> stats;
  // Only when some sequence asks: the others' prefill is the same as ever.
  model::LanguageModel::PromptScoring scoring;
  bool any_scored = false;
  for (const auto& s : admitted) {
    scoring.wanted.push_back(s->score);
    any_scored = any_scored || s->score;
  }
  std::vector<Sequence*> rows;
  for (const auto& s : admitted) rows.push_back(s.get());
  model::LanguageModel::DeviceSampling draws;
  std::vector<std::mt19937_64> engines;
  const bool on_device = PlanDeviceDraws(rows, &draws, &engines);
  auto logits = GuardExceptions(name_, "prefill", [&] {
    return model_->Prefill(prompts, &states, sampled ? &stats : nullptr, any_scored ? &scoring : nullptr,
                           on_device ? &draws : nullptr);
  });
  if (logits.ok() && sampled) {
    for (const auto& one : stats) observers_.on_stats(one);
  }
  if (!logits.ok()) {
    static LogLimiter limiter;
    LogErrorLimited(&limiter, "model %s: prefill failed: %s", name_, logits.status().message());
  }
  for (size_t i = 0; i < admitted.size(); ++i) {
    Sequence* s = admitted[i].get();
    if (!logits.ok()) {
      Finish(s, logits.status(), FinishReason::kLength);
    } else {
      s->state = std::move(states[i]);
      if (s->score) {
        EmitPromptScores(s, i < scoring.logprobs.size() ? scoring.logprobs[i] : std::vector<float>());
      }
      if (s->score_only) {
        s->time_to_first_token = absl::Now() - s->arrived;
        Finish(s, absl::OkStatus(), FinishReason::kLength);
      } else {
        Emit(s, Next(s, i, (*logits)[i], draws, &engines));
      }
    }
    running_.push_back(std::move(admitted[i]));
  }
}

// One decode step for every live sequence; cancelled and expired ones finish first.
void GenerationScheduler::Step() {
  std::vector<Sequence*> step;
  const absl::Time now = absl::Now();
  for (auto& s : running_) {
    if (s->finished) continue;
    if (s->stream->cancelled()) {
      Finish(s.get(), absl::CancelledError("the client cancelled the request"), FinishReason::kLength);
    } else if (now >= s->deadline) {
      Finish(s.get(), absl::DeadlineExceededError("deadline exceeded during generation"),
             FinishReason::kLength);
    } else {
      step.push_back(s.get());
    }
  }
  if (step.empty()) return;
  std::vector<model::LanguageModel::Sequence*> states;
  std::vector<int32_t> tokens;
  for (Sequence* s : step) {
    states.push_back(s->state.get());
    tokens.push_back(s->pending);
  }
  model::LanguageModel::DeviceSampling draws;
  std::vector<std::mt19937_64> engines;
  const bool on_device = PlanDeviceDraws(step, &draws, &engines);
  auto logits = GuardExceptions(name_, "decode step", [&] {
    return model_->Step(states, tokens, on_device ? &draws : nullptr);
  });
  if (!logits.ok()) {
    static LogLimiter limiter;
    LogErrorLimited(&limiter, "model %s: decode step failed: %s", name_, logits.status().message());
  }
  for (size_t i = 0; i < step.size(); ++i) {
    if (!logits.ok()) {
      Finish(step[i], logits.status(), FinishReason::kLength);
    } else {
      Emit(step[i], Next(step[i], i, (*logits)[i], draws, &engines));
    }
  }
}

void GenerationScheduler::Work() {
  if (observers_.on_thread_start) observers_.on_thread_start();
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      while (waiting_.empty() && running_.empty() && !stopping_) cv_.Wait(&mu_);
      if (waiting_.empty() && running_.empty() && stopping_) return;
    }
    std::vector<std::unique_ptr<Sequence>> admitted;
    Admit(&admitted);
    if (!admitted.empty()) Prefill(std::move(admitted));
    Step();

    // Finished sequences leave the running set (their slots went back in Finish).
    int removed = 0;
    for (auto it = running_.begin(); it != running_.end();) {
      if ((*it)->finished) {
        ++removed;
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    absl::MutexLock lock(&mu_);
    running_count_ -= removed;
  }
}

}  // namespace elliptical::server
