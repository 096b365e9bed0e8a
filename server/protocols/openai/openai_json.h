// OpenAI's legacy completions API (POST /v1/completions, GET /v1/models) as JSON: parsing a
// request into elliptical.v1.GenerateRequests, and the response, stream-chunk, model-list and
// error objects built from the generation events (generation_scheduler.h). Plain code with no
// server in it, so the mapping is tested on its own (tests/server/openai_json_test.cc);
// openai_routes.cc moves the events. docs/protocols/openai.md lists the field mapping.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/core/generation_events.h"
#include "server/core/requests.h"
#include "server/generation/generation_scheduler.h"
#include "server/repository/model_repository.h"

namespace elliptical::server::openai {

// Bounds of the OpenAI layer itself; the core's RequestLimits apply to each GenerateRequest.
inline constexpr int kMaxChoices = 8;    // n
inline constexpr int kMaxPrompts = 8;    // prompt as an array of strings
inline constexpr int kMaxTotalChoices = 16;  // prompts x n: the GenerateCalls of one request
inline constexpr int kMaxLogprobs = 5;   // logprobs, as OpenAI's own bound
inline constexpr int kDefaultMaxTokens = 16;  // OpenAI's default max_tokens

// A request OpenAI's API would accept, checked for types and the bounds above.
struct CompletionRequest {
  std::string model;
  std::vector<std::string> prompts;  // one choice set of `n` per prompt
  int max_tokens = kDefaultMaxTokens;
  float temperature = 1;  // OpenAI's default (0: greedy)
  float top_p = 1;
  int top_k = 0;  // an extension (vLLM's): 0 disables
  std::vector<std::string> stop;
  std::optional<int64_t> seed;
  int n = 1;
  std::optional<int> logprobs;  // present: the chosen tokens' logprobs and this many alternatives
  bool echo = false;            // the prompt is prepended to each choice's text
  bool stream = false;
  bool include_usage = false;   // stream_options.include_usage: a last chunk with the usage
  float presence_penalty = 0;   // [-2, 2]
  float frequency_penalty = 0;  // [-2, 2]
  float repetition_penalty = 1;  // an extension (vLLM's): (0, 10], 1: off
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> [-100, 100]
};

// A request that OpenAI's API would refuse: 400 with `param` naming the field.
struct RequestError {
  std::string message;
  std::string param;  // empty: null
};

// Parses and checks a /v1/completions body. Unknown fields are ignored; a known field of the
// wrong type or out of its bound is an error.
bool ParseCompletionRequest(absl::string_view body, CompletionRequest* request, RequestError* error);

// max_tokens 0 with echo: prompt `prompt_index` scored as the beginning of a text (nothing
// appended), through InferenceCalls::ScoreStream.
ScoreRequest ToScoreRequest(const CompletionRequest& request, int prompt_index);

// The core request of choice `choice` (0 .. n-1) of prompt `prompt_index`; with a seed, choice
// i gets seed + i, so n choices differ and each is reproducible.
GenerateRequest ToGenerateRequest(const CompletionRequest& request, int prompt_index, int choice);

// What one choice has received so far. Its text is the concatenation of the events' text
// (tokens' released text and the final event's flushed text).
struct ChoiceState {
  int index = 0;
  bool want_logprobs = false;
  std::string text;                 // everything so far (the echoed prompt first)
  int64_t text_chars = 0;           // code points of `text` (OpenAI's text_offset unit)
  // The chosen tokens: the text each released, its logprob and where it starts in the text.
  // With echo and logprobs the prompt's tokens come first (the first one's logprob NaN: null).
  std::vector<std::string> tokens;
  std::vector<float> token_logprobs;
  std::vector<int64_t> text_offset;
  // Per token entry: {text: logprob} of the most likely tokens there (the chosen one included),
  // null for the prompt's tokens (the prefill scores only the tokens that are there).
  std::vector<nlohmann::json> top_logprobs;
  // echo: the prompt (the beginning of `text`) is still to be sent, with the first chunk.
  bool echo_unsent = false;
  bool finished = false;
  absl::Status status;              // the final event's
  FinishReason reason = FinishReason::kLength;
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

// What an event added to a choice (for a stream chunk): text and token entries from `first_token`.
struct ChoiceDelta {
  std::string text;
  size_t first_token = 0;
};

// Starts a choice; with echo, `prompt` is its text's beginning.
ChoiceState StartChoice(int index, const CompletionRequest& request, const std::string& prompt);
// Adds one event. Text released with no token of its own (held-back text flushed at the end) is
// appended to the last token's entry, so the tokens always concatenate to the generated text.
void AddEvent(const GenerationEvent& event, ChoiceState* choice, ChoiceDelta* delta);

const char* FinishReasonName(FinishReason reason);

// Usage over all choices: prompt tokens once per prompt (from each prompt's first choice),
// completion tokens of every choice.
nlohmann::json UsageJson(const std::vector<ChoiceState>& choices, int n);

// OpenAI's `logprobs` object for the token entries [from, end) of a choice; null without logprobs.
nlohmann::json LogprobsJson(const ChoiceState& choice, size_t from);

// The non-streaming response: object "text_completion" with every choice and the usage.
nlohmann::json CompletionJson(const std::string& id, int64_t created, const std::string& model,
                              const std::vector<ChoiceState>& choices, int n);
// One stream chunk of one choice; with stream_options.include_usage every chunk carries
// "usage": null (OpenAI's shape), otherwise no usage field.
nlohmann::json ChunkJson(const std::string& id, int64_t created, const std::string& model,
                         const ChoiceState& choice, const ChoiceDelta& delta, bool final, bool include_usage);
// The stream's last chunk when stream_options.include_usage asks for it: no choices, the usage.
nlohmann::json UsageChunkJson(const std::string& id, int64_t created, const std::string& model,
                              const std::vector<ChoiceState>& choices, int n);

// OpenAI's error object: {"error": {"message", "type", "param", "code"}}.
nlohmann::json ErrorJson(absl::string_view message, absl::string_view type, absl::string_view param = "",
                         absl::string_view code = "");
// The error object of a core status, typed by its HTTP status (http_status.h).
nlohmann::json StatusErrorJson(const absl::Status& status);
const char* ErrorTypeFor(int http_status);

// GET /v1/models: every ready language model, owned_by "elliptical-server"; `created` is when
// the server started (the repository keeps no model dates).
nlohmann::json ModelsJson(const std::vector<ModelSnapshot>& models, int64_t created);

// Code points in a UTF-8 string (its bytes that do not continue a character).
int64_t Utf8Chars(absl::string_view text);

}  // namespace elliptical::server::openai
