// What a Generate or scoring call tells its front end, one event at a time: a token, the
// prompt's scores, the end (with the summary), or the failure. Front ends read these through
// GenerateCall::Take and never see the scheduler's own event record.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/generation/generation_scheduler.h"

namespace elliptical::server {

// A generated token, or text the stream released without a new token (has_id false): a
// tokenizer's piece held back while it could still begin a stop sequence.
struct TokenEvent {
  bool has_id = true;
  int32_t id = 0;
  std::string text;
  float logprob = 0;  // natural log, under the distribution it was drawn from
  // When the request asked (SamplingParams::top_logprobs): the most likely tokens at this
  // position under that same distribution, most likely first.
  std::vector<GenerationStream::TopToken> top_logprobs;
};

// Every prompt token with its log-probability (the first has none), before any generated token.
struct PromptScoresEvent {
  std::vector<GenerationStream::ScoredToken> tokens;
};

// The generation ended well. `text` is what the stream still held back (empty when a stop
// sequence matched: then what was held is the stop itself).
struct FinishedEvent {
  FinishReason reason = FinishReason::kLength;
  std::string text;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  absl::Duration time_to_first_token;
  absl::Duration total;
  // Scoring requests (and Generate with prompt_logprobs): how many prompt tokens were scored and
  // the sum of their log-probabilities.
  int scored_tokens = 0;
  double scored_logprob_sum = 0;
};

// The generation ended with an error (deadline, cancelled, the model's limits, ...).
struct FailedEvent {
  absl::Status status;
  int prompt_tokens = 0;
  int generated_tokens = 0;
};

using GenerationEvent = std::variant<TokenEvent, PromptScoresEvent, FinishedEvent, FailedEvent>;

// The last event of a call is a FinishedEvent or a FailedEvent, and nothing follows it.
inline bool IsFinal(const GenerationEvent& e) {
  return std::holds_alternative<FinishedEvent>(e) || std::holds_alternative<FailedEvent>(e);
}

// The scheduler's record of one step, as the events above (one, or none for an empty record).
void AppendEvents(GenerationStream::Event&& record, std::deque<GenerationEvent>* out);

}  // namespace elliptical::server
