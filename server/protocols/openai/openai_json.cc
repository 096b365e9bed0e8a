#include "server/protocols/openai/openai_json.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/config/model_dir.h"
#include "server/transport/http/bounded_json.h"
#include "server/transport/http/http_status.h"

namespace elliptical::server::openai {
namespace {

using nlohmann::json;

bool Fail(RequestError* error, std::string param, std::string message) {
  error->param = std::move(param);
  error->message = std::move(message);
  return false;
}

const char* TypeName(const json& v) {
  return v.is_null() ? "null" : v.is_boolean() ? "a boolean" : v.is_number() ? "a number"
       : v.is_string() ? "a string" : v.is_array() ? "an array" : "an object";
}

bool WrongType(RequestError* error, const std::string& param, const char* expected, const json& v) {
  return Fail(error, param, absl::StrCat("'", param, "' must be ", expected, ", not ", TypeName(v)));
}

// An integer field in [lo, hi]; a float with an integral value (2.0) is accepted, as JSON has
// one number type.
bool ReadInt(const json& body, const std::string& key, int64_t lo, int64_t hi, std::optional<int64_t>* out,
             RequestError* error) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return true;
  int64_t value = 0;
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi)) {
      return Fail(error, key, absl::StrCat("'", key, "' must be at most ", hi));
    }
    value = it->get<int64_t>();
  } else if (it->is_number_float()) {
    const double d = it->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || d < -9.2e18 || d > 9.2e18) {
      return WrongType(error, key, "an integer", *it);
    }
    value = static_cast<int64_t>(d);
  } else {
    return WrongType(error, key, "an integer", *it);
  }
  if (value < lo || value > hi) {
    return Fail(error, key, absl::StrCat("'", key, "' is ", value, "; it must be between ", lo, " and ", hi));
  }
  *out = value;
  return true;
}

bool ReadFloat(const json& body, const std::string& key, double lo, double hi, float* out, RequestError* error) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number()) return WrongType(error, key, "a number", *it);
  const double d = it->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    return Fail(error, key, absl::StrCat("'", key, "' is ", d, "; it must be between ", lo, " and ", hi));
  }
  *out = static_cast<float>(d);
  return true;
}

bool ReadBool(const json& body, const std::string& key, bool* out, RequestError* error) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_boolean()) return WrongType(error, key, "a boolean", *it);
  *out = it->get<bool>();
  return true;
}

// A string or an array of strings (at most `max` of them).
bool ReadStrings(const json& body, const std::string& key, size_t max, std::vector<std::string>* out,
                 RequestError* error) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return true;
  if (it->is_string()) {
    out->push_back(it->get<std::string>());
    return true;
  }
  if (!it->is_array()) return WrongType(error, key, "a string or an array of strings", *it);
  if (it->size() > max) {
    return Fail(error, key, absl::StrCat("'", key, "' holds ", it->size(), " strings; the limit is ", max));
  }
  for (const json& item : *it) {
    if (!item.is_string()) {
      return Fail(error, key, absl::StrCat("'", key, "' must hold strings only (token-id prompts are not supported)"));
    }
    out->push_back(item.get<std::string>());
  }
  return true;
}

// OpenAI's logit_bias: an object from token ids (as decimal strings) to biases in [-100, 100].
// The scheduler checks the ids against the model's vocabulary.
bool ReadLogitBias(const json& body, std::vector<std::pair<int32_t, float>>* out, RequestError* error) {
  auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_object()) return WrongType(error, "logit_bias", "an object", *it);
  if (it->size() > static_cast<size_t>(kMaxLogitBiasEntries)) {
    return Fail(error, "logit_bias", absl::StrCat("'logit_bias' holds ", it->size(), " tokens; the limit is ",
                                                  kMaxLogitBiasEntries));
  }
  for (const auto& [key, value] : it->items()) {
    int32_t id = 0;
    if (key.empty() || key.size() > 10 || !std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(key, &id)) {
      return Fail(error, "logit_bias", absl::StrCat("'logit_bias' keys must be token ids (decimal integers); \"",
                                                    key.substr(0, 32), "\" is not"));
    }
    if (!value.is_number()) return WrongType(error, "logit_bias", "an object of numbers", value);
    const double bias = value.get<double>();
    if (!std::isfinite(bias) || bias < -kMaxLogitBias || bias > kMaxLogitBias) {
      return Fail(error, "logit_bias", absl::StrCat("'logit_bias' for token ", id, " is ", bias,
                                                    "; it must be between -100 and 100"));
    }
    out->emplace_back(id, static_cast<float>(bias));
  }
  return true;
}

}  // namespace

int64_t Utf8Chars(absl::string_view text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

bool ParseCompletionRequest(absl::string_view body, CompletionRequest* request, RequestError* error) {
  // Bounded (bounded_json.h): the body is small, but a nesting bomb or a body dense in nodes
  // would otherwise hold many times its size.
  absl::StatusOr<json> parsed = bounded_json::Parse(body);
  if (!parsed.ok()) return Fail(error, "", std::string(parsed.status().message()));
  const json& j = *parsed;
  if (!j.is_object()) return Fail(error, "", "the request body must be a JSON object");

  auto model = j.find("model");
  if (model == j.end() || model->is_null()) return Fail(error, "model", "'model' is required");
  if (!model->is_string()) return WrongType(error, "model", "a string", *model);
  request->model = model->get<std::string>();

  auto prompt = j.find("prompt");
  if (prompt == j.end() || prompt->is_null()) return Fail(error, "prompt", "'prompt' is required");
  if (!ReadStrings(j, "prompt", kMaxPrompts, &request->prompts, error)) return false;
  if (request->prompts.empty()) return Fail(error, "prompt", "'prompt' is an empty array");

  std::optional<int64_t> v;
  if (!ReadInt(j, "max_tokens", 0, 1 << 30, &v, error)) return false;
  if (v) request->max_tokens = static_cast<int>(*v);
  v.reset();
  if (!ReadFloat(j, "temperature", 0, 2, &request->temperature, error)) return false;
  if (!ReadFloat(j, "top_p", 0, 1, &request->top_p, error)) return false;
  if (!ReadInt(j, "top_k", -1, 1 << 30, &v, error)) return false;
  if (v) request->top_k = *v < 0 ? 0 : static_cast<int>(*v);  // vLLM's -1: off
  v.reset();
  // The core bounds the count and length of stop sequences (--max_stop_sequences); this bound
  // only keeps a hostile array from being copied at all.
  if (!ReadStrings(j, "stop", 1024, &request->stop, error)) return false;
  if (!ReadInt(j, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
               &request->seed, error)) {
    return false;
  }
  if (!ReadInt(j, "n", 1, kMaxChoices, &v, error)) return false;
  if (v) request->n = static_cast<int>(*v);
  v.reset();
  if (request->prompts.size() * static_cast<size_t>(request->n) > kMaxTotalChoices) {
    return Fail(error, "n", absl::StrCat(request->prompts.size(), " prompts x n=", request->n, " choices; the limit is ",
                                         kMaxTotalChoices, " per request"));
  }
  if (auto best_of = j.find("best_of"); best_of != j.end() && !best_of->is_null()) {
    if (!ReadInt(j, "best_of", 1, kMaxChoices, &v, error)) return false;
    if (*v != request->n) return Fail(error, "best_of", "'best_of' other than n is not supported");
    v.reset();
  }
  if (!ReadInt(j, "logprobs", 0, kMaxLogprobs, &v, error)) return false;
  if (v) request->logprobs = static_cast<int>(*v);
  v.reset();
  if (!ReadBool(j, "echo", &request->echo, error)) return false;
  if (request->max_tokens == 0 && !request->echo) {
    return Fail(error, "max_tokens", "max_tokens 0 generates nothing: set echo (with logprobs, to score the prompt)");
  }
  if (!ReadBool(j, "stream", &request->stream, error)) return false;
  if (auto options = j.find("stream_options"); options != j.end() && !options->is_null()) {
    if (!options->is_object()) return WrongType(error, "stream_options", "an object", *options);
    if (!ReadBool(*options, "include_usage", &request->include_usage, error)) {
      error->param = "stream_options.include_usage";
      return false;
    }
  }
  if (!ReadFloat(j, "presence_penalty", -kMaxPenalty, kMaxPenalty, &request->presence_penalty, error)) return false;
  if (!ReadFloat(j, "frequency_penalty", -kMaxPenalty, kMaxPenalty, &request->frequency_penalty, error)) return false;
  if (auto r = j.find("repetition_penalty"); r != j.end() && !r->is_null()) {
    if (!ReadFloat(j, "repetition_penalty", 0, kMaxRepetitionPenalty, &request->repetition_penalty, error)) return false;
    if (request->repetition_penalty <= 0) {
      return Fail(error, "repetition_penalty", "'repetition_penalty' must be above 0 (1: off)");
    }
  }
  if (!ReadLogitBias(j, &request->logit_bias, error)) return false;
  if (auto suffix = j.find("suffix"); suffix != j.end() && !suffix->is_null()) {
    if (!suffix->is_string()) return WrongType(error, "suffix", "a string", *suffix);
    if (!suffix->get_ref<const std::string&>().empty()) {
      return Fail(error, "suffix", "'suffix' (insertion) is not supported");
    }
  }
  return true;
}

GenerateRequest ToGenerateRequest(const CompletionRequest& request, int prompt_index, int choice) {
  GenerateRequest out;
  out.model_name = request.model;
  out.prompt = request.prompts[prompt_index];
  out.max_new_tokens = request.max_tokens;
  out.sampling.temperature = request.temperature;
  out.sampling.top_p = request.top_p;
  // Past int's range it is past every --max_top_k too: the core refuses it by name.
  out.sampling.top_k = static_cast<int>(std::min<int64_t>(request.top_k, std::numeric_limits<int>::max()));
  if (request.seed) out.seed = static_cast<uint64_t>(*request.seed) + static_cast<uint64_t>(choice);
  out.stop = request.stop;
  // echo with logprobs scores the prompt too (OpenAI's way to get a text's log-likelihood).
  out.prompt_logprobs = request.echo && request.logprobs.has_value();
  out.sampling.top_logprobs = request.logprobs.value_or(0);
  out.sampling.presence_penalty = request.presence_penalty;
  out.sampling.frequency_penalty = request.frequency_penalty;
  out.sampling.repetition_penalty = request.repetition_penalty;
  out.sampling.logit_bias = request.logit_bias;
  return out;
}

ScoreRequest ToScoreRequest(const CompletionRequest& request, int prompt_index) {
  ScoreRequest out;
  out.model_name = request.model;
  out.text = request.prompts[prompt_index];
  out.append_eos = false;  // the prompt as the beginning of a text, as echo scores it
  return out;
}

ChoiceState StartChoice(int index, const CompletionRequest& request, const std::string& prompt) {
  ChoiceState c;
  c.index = index;
  c.want_logprobs = request.logprobs.has_value();
  if (request.echo) {
    c.text = prompt;
    c.text_chars = Utf8Chars(prompt);
    c.echo_unsent = true;
  }
  return c;
}

void AddEvent(const GenerationEvent& event, ChoiceState* c, ChoiceDelta* delta) {
  delta->first_token = c->tokens.size();
  if (c->echo_unsent) {
    // The echoed prompt goes out with the choice's first chunk.
    delta->text += c->text;
    c->echo_unsent = false;
  }
  absl::string_view text;
  if (const auto* scores = std::get_if<PromptScoresEvent>(&event); scores && c->want_logprobs) {
    // The prompt's own tokens come first; the first has no logprob (null), as in OpenAI's
    // answer. Their offsets run over the tokens' decoded text, which is the prompt itself unless
    // the tokenizer cannot represent some of it (an unknown character decodes as its own
    // symbol): capped at the prompt's end, they stay in order before the generated tokens'.
    const int64_t prompt_chars = c->text_chars;
    int64_t offset = 0;
    for (const GenerationStream::ScoredToken& t : scores->tokens) {
      c->tokens.push_back(t.text);
      c->token_logprobs.push_back(t.has_logprob ? t.logprob : std::numeric_limits<float>::quiet_NaN());
      c->text_offset.push_back(std::min(offset, prompt_chars));
      c->top_logprobs.push_back(nullptr);
      offset += Utf8Chars(t.text);
    }
  } else if (const auto* token = std::get_if<TokenEvent>(&event)) {
    if (token->has_id) {
      c->tokens.push_back(token->text);
      c->token_logprobs.push_back(token->logprob);
      c->text_offset.push_back(c->text_chars);
      json top = json::object();
      for (const GenerationStream::TopToken& t : token->top_logprobs) {
        if (!top.contains(t.text)) top[t.text] = t.logprob;  // the more likely of two that read alike
      }
      c->top_logprobs.push_back(std::move(top));
    } else if (!token->text.empty() && !c->tokens.empty()) {
      c->tokens.back() += token->text;  // a stream chunk carries it as text only
    }
    text = token->text;
  } else if (const auto* finished = std::get_if<FinishedEvent>(&event)) {
    if (!finished->text.empty() && !c->tokens.empty()) c->tokens.back() += finished->text;
    text = finished->text;
    c->finished = true;
    c->status = absl::OkStatus();
    c->reason = finished->reason;
    c->prompt_tokens = finished->prompt_tokens;
    c->completion_tokens = finished->generated_tokens;
  } else if (const auto* failed = std::get_if<FailedEvent>(&event)) {
    c->finished = true;
    c->status = failed->status;
    c->prompt_tokens = failed->prompt_tokens;
    c->completion_tokens = failed->generated_tokens;
  }
  c->text.append(text.data(), text.size());
  c->text_chars += Utf8Chars(text);
  delta->text.append(text.data(), text.size());
}

const char* FinishReasonName(FinishReason reason) {
  return reason == FinishReason::kLength ? "length" : "stop";
}

json UsageJson(const std::vector<ChoiceState>& choices, int n) {
  int64_t prompt = 0, completion = 0;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (n > 0 && i % static_cast<size_t>(n) == 0) prompt += choices[i].prompt_tokens;
    completion += choices[i].completion_tokens;
  }
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

json LogprobsJson(const ChoiceState& c, size_t from) {
  if (!c.want_logprobs) return nullptr;
  json tokens = json::array(), logprobs = json::array(), offsets = json::array(), top = json::array();
  for (size_t i = from; i < c.tokens.size(); ++i) {
    tokens.push_back(c.tokens[i]);
    logprobs.push_back(std::isnan(c.token_logprobs[i]) ? json(nullptr) : json(c.token_logprobs[i]));
    offsets.push_back(c.text_offset[i]);
    top.push_back(i < c.top_logprobs.size() ? c.top_logprobs[i] : json(nullptr));
  }
  return {{"tokens", tokens}, {"token_logprobs", logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

json CompletionJson(const std::string& id, int64_t created, const std::string& model,
                    const std::vector<ChoiceState>& choices, int n) {
  json out_choices = json::array();
  for (const ChoiceState& c : choices) {
    out_choices.push_back({{"text", c.text},
                           {"index", c.index},
                           {"logprobs", LogprobsJson(c, 0)},
                           {"finish_reason", FinishReasonName(c.reason)}});
  }
  return {{"id", id},           {"object", "text_completion"}, {"created", created},
          {"model", model},     {"choices", out_choices},      {"usage", UsageJson(choices, n)}};
}

json ChunkJson(const std::string& id, int64_t created, const std::string& model, const ChoiceState& c,
               const ChoiceDelta& delta, bool final, bool include_usage) {
  json choice = {{"text", delta.text},
                 {"index", c.index},
                 {"logprobs", LogprobsJson(c, delta.first_token)},
                 {"finish_reason", final ? json(FinishReasonName(c.reason)) : json(nullptr)}};
  json chunk = {{"id", id},       {"object", "text_completion"}, {"created", created},
                {"model", model}, {"choices", json::array({choice})}};
  if (include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json UsageChunkJson(const std::string& id, int64_t created, const std::string& model,
                    const std::vector<ChoiceState>& choices, int n) {
  return {{"id", id},       {"object", "text_completion"}, {"created", created},
          {"model", model}, {"choices", json::array()},    {"usage", UsageJson(choices, n)}};
}

json ErrorJson(absl::string_view message, absl::string_view type, absl::string_view param, absl::string_view code) {
  return {{"error",
           {{"message", std::string(message)},
            {"type", std::string(type)},
            {"param", param.empty() ? json(nullptr) : json(std::string(param))},
            {"code", code.empty() ? json(nullptr) : json(std::string(code))}}}};
}

const char* ErrorTypeFor(int http_status) {
  switch (http_status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "invalid_request_error";
    case 429: return "rate_limit_error";
    default: return http_status < 500 ? "invalid_request_error" : "server_error";
  }
}

json StatusErrorJson(const absl::Status& status) {
  const int http = HttpStatusFor(status.code());
  const char* code = status.code() == absl::StatusCode::kNotFound ? "model_not_found"
                     : status.code() == absl::StatusCode::kUnauthenticated ? "invalid_api_key"
                                                                           : "";
  return ErrorJson(status.message(), ErrorTypeFor(http), "", code);
}

json ModelsJson(const std::vector<ModelSnapshot>& models, int64_t created) {
  json data = json::array();
  for (const ModelSnapshot& m : models) {
    if (!m.family || *m.family != model::ModelFamily::kLanguageModel || m.state != ModelState::kReady) continue;
    data.push_back({{"id", m.name}, {"object", "model"}, {"created", created}, {"owned_by", "elliptical-server"},
                    {"family", std::string(model::FamilyName(*m.family))}});
  }
  return {{"object", "list"}, {"data", data}};
}

}  // namespace elliptical::server::openai
