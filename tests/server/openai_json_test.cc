// OpenAI's completions JSON (server/protocols/openai/openai_json.h) and the HTTP status mapping
// (server/transport/http/http_status.h), without a server.
#include "server/protocols/openai/openai_json.h"

#include <algorithm>
#include <limits>

#include <gtest/gtest.h>

#include "server/transport/http/http_status.h"

namespace elliptical::server::openai {
namespace {

using nlohmann::json;

CompletionRequest Parse(const std::string& body) {
  CompletionRequest r;
  RequestError e;
  EXPECT_TRUE(ParseCompletionRequest(body, &r, &e)) << body << ": " << e.message;
  return r;
}

RequestError ParseError(const std::string& body) {
  CompletionRequest r;
  RequestError e;
  EXPECT_FALSE(ParseCompletionRequest(body, &r, &e)) << body;
  return e;
}

GenerationEvent Token(int id, const std::string& text, float logprob) { return TokenEvent{true, id, text, logprob}; }

GenerationEvent Final(FinishReason reason, int prompt_tokens, int generated, const std::string& text = "") {
  FinishedEvent e;
  e.reason = reason;
  e.prompt_tokens = prompt_tokens;
  e.generated_tokens = generated;
  e.text = text;
  return e;
}

TEST(HttpStatus, MapsEveryCanonicalCode) {
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kOutOfRange), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kAborted), 409);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kCancelled), 499);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnknown), 500);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kDataLoss), 500);
}

TEST(ParseCompletion, DefaultsAreOpenAIs) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "In the beginning"})");
  EXPECT_EQ(r.model, "lm");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0], "In the beginning");
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_FLOAT_EQ(r.temperature, 1);
  EXPECT_FLOAT_EQ(r.top_p, 1);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_FALSE(r.logprobs.has_value());
  EXPECT_FALSE(r.echo);
  EXPECT_FALSE(r.stream);
  EXPECT_TRUE(r.stop.empty());
}

TEST(ParseCompletion, MapsEveryField) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": ["p"], "max_tokens": 5, "temperature": 0,
      "top_p": 0.5, "top_k": 7, "stop": ["a", "b"], "seed": 41, "n": 3, "logprobs": 2, "stream": true,
      "stream_options": {"include_usage": true}, "user": "someone", "unknown": {"x": 1}})");
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.logprobs, 2);
  GenerateRequest g = ToGenerateRequest(r, 0, 2);
  EXPECT_EQ(g.model_name, "lm");
  EXPECT_EQ(g.prompt, "p");
  EXPECT_EQ(g.max_new_tokens, 5);
  EXPECT_FLOAT_EQ(g.sampling.temperature, 0);
  EXPECT_FLOAT_EQ(g.sampling.top_p, 0.5);
  EXPECT_EQ(g.sampling.top_k, 7);
  EXPECT_EQ(g.seed, 43u);  // seed + choice
  ASSERT_EQ(g.stop.size(), 2u);
  EXPECT_EQ(g.stop[1], "b");
}

TEST(ParseCompletion, StopAsOneString) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "p", "stop": "\n"})");
  ASSERT_EQ(r.stop.size(), 1u);
  EXPECT_EQ(r.stop[0], "\n");
}

TEST(ParseCompletion, NoSeedMeansRandomForEveryChoice) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "p", "n": 2})");
  EXPECT_EQ(ToGenerateRequest(r, 0, 0).seed, 0u);
  EXPECT_EQ(ToGenerateRequest(r, 0, 1).seed, 0u);
}

TEST(ParseCompletion, IntegralFloatsAreIntegers) {
  EXPECT_EQ(Parse(R"({"model": "lm", "prompt": "p", "max_tokens": 4.0})").max_tokens, 4);
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "max_tokens": 4.5})").param, "max_tokens");
}

TEST(ParseCompletion, WrongTypesNameTheirField) {
  EXPECT_EQ(ParseError("not json").param, "");
  EXPECT_EQ(ParseError("[1]").param, "");
  EXPECT_EQ(ParseError(R"({"prompt": "p"})").param, "model");
  EXPECT_EQ(ParseError(R"({"model": 3, "prompt": "p"})").param, "model");
  EXPECT_EQ(ParseError(R"({"model": "lm"})").param, "prompt");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": [1, 2]})").param, "prompt");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": []})").param, "prompt");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "max_tokens": "5"})").param, "max_tokens");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "max_tokens": -1})").param, "max_tokens");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "temperature": "hot"})").param, "temperature");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "temperature": 2.5})").param, "temperature");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "top_p": 1.5})").param, "top_p");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "stop": 5})").param, "stop");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "stream": "yes"})").param, "stream");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "echo": 1})").param, "echo");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "seed": "1"})").param, "seed");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "stream_options": 1})").param, "stream_options");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "stream_options": {"include_usage": 1}})").param,
            "stream_options.include_usage");
}

TEST(ParseCompletion, EscapedStringsAreUnescaped) {
  CompletionRequest r = Parse(R"({"model": "l\u006d", "prompt": ["caf\u00e9 \"q\"\n\ud83d\ude00", "tab\there"],
      "stop": ["\\n", "\u0000", "\/"]})");
  EXPECT_EQ(r.model, "lm");
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[0], "caf\xc3\xa9 \"q\"\n\xf0\x9f\x98\x80");
  EXPECT_EQ(r.prompts[1], "tab\there");
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\\n", std::string(1, '\0'), "/"}));
}

TEST(ParseCompletion, HostileBodiesAreRefusedBounded) {
  // A nesting bomb in a field that would be ignored: refused where it crosses the depth limit.
  const std::string head = R"({"model": "lm", "prompt": "p", "x": )";
  RequestError bomb = ParseError(head + std::string(1 << 20, '['));
  EXPECT_EQ(bomb.param, "");
  EXPECT_EQ(bomb.message, "the JSON body nests deeper than 32 levels (at byte offset " +
                              std::to_string(head.size() + 31) + ")");
  // Nodes past the DOM's budget (16 bytes per body byte).
  std::string dense = head + "[";
  for (int i = 0; i < (1 << 20); ++i) dense += i == 0 ? "{}" : ",{}";
  RequestError budget = ParseError(dense + "]}");
  EXPECT_EQ(budget.param, "");
  EXPECT_NE(budget.message.find("bytes of memory to parse (8 per body byte"), std::string::npos) << budget.message;
  // Unknown fields nested within the limit are still ignored.
  EXPECT_EQ(Parse(head + std::string(30, '[') + std::string(30, ']') + "}").prompts[0], "p");
  // Malformed JSON says where.
  EXPECT_EQ(ParseError(R"({"model": "lm",})").message, "the request body is not valid JSON (at byte offset 15)");
}

TEST(ParseCompletion, Bounds) {
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "n": 0})").param, "n");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "n": 9})").param, "n");
  EXPECT_EQ(Parse(R"({"model": "lm", "prompt": "p", "n": 8})").n, 8);
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": ["a", "b", "c"], "n": 8})").param, "n");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": ["1","2","3","4","5","6","7","8","9"]})").param, "prompt");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "logprobs": 6})").param, "logprobs");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "best_of": 2})").param, "best_of");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "presence_penalty": 2.5})").param, "presence_penalty");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "frequency_penalty": -2.01})").param, "frequency_penalty");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "frequency_penalty": "1"})").param, "frequency_penalty");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "repetition_penalty": 0})").param, "repetition_penalty");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "repetition_penalty": 11})").param, "repetition_penalty");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "logit_bias": {"5": 101}})").param, "logit_bias");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "logit_bias": {"a5": 1}})").param, "logit_bias");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "logit_bias": {"-5": 1}})").param, "logit_bias");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "logit_bias": {"99999999999": 1}})").param, "logit_bias");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "logit_bias": {"5": "1"}})").param, "logit_bias");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "logit_bias": [1]})").param, "logit_bias");
  {
    std::string many = R"({"model": "lm", "prompt": "p", "logit_bias": {)";
    for (int i = 0; i <= 300; ++i) many += (i ? ", \"" : "\"") + std::to_string(i) + "\": 1";
    EXPECT_EQ(ParseError(many + "}}").param, "logit_bias");
  }
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "max_tokens": 0})").param, "max_tokens");
  EXPECT_EQ(ParseError(R"({"model": "lm", "prompt": "p", "max_tokens": 0, "echo": 1})").param, "echo");
  // The values OpenAI's SDK sends by default are accepted.
  Parse(R"({"model": "lm", "prompt": "p", "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {},
            "best_of": 1, "suffix": null})");
}

TEST(ParseCompletion, PenaltiesBiasAndTopLogprobsReachTheCoreRequest) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "p", "presence_penalty": 0.5, "frequency_penalty": -1,
      "repetition_penalty": 1.3, "logit_bias": {"7": -100, "12": 2.5}, "logprobs": 3})");
  GenerateRequest g = ToGenerateRequest(r, 0, 0);
  EXPECT_FLOAT_EQ(g.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(g.sampling.frequency_penalty, -1.0f);
  EXPECT_FLOAT_EQ(g.sampling.repetition_penalty, 1.3f);
  std::vector<std::pair<int32_t, float>> bias = g.sampling.logit_bias;
  std::sort(bias.begin(), bias.end());
  EXPECT_EQ(bias, (std::vector<std::pair<int32_t, float>>{{7, -100.0f}, {12, 2.5f}}));
  EXPECT_EQ(g.sampling.top_logprobs, 3);
  // Without them, sampling is as before: nothing adjusts the logits.
  GenerateRequest plain = ToGenerateRequest(Parse(R"({"model": "lm", "prompt": "p"})"), 0, 0);
  EXPECT_FALSE(AdjustsLogits(plain.sampling));
  EXPECT_EQ(plain.sampling.top_logprobs, 0);
}

TEST(Choice, AccumulatesTextLogprobsAndOffsets) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "p", "logprobs": 0})");
  ChoiceState c = StartChoice(0, r, "p");
  ChoiceDelta d;
  AddEvent(Token(5, " and", -0.5f), &c, &d);
  EXPECT_EQ(d.text, " and");
  EXPECT_EQ(d.first_token, 0u);
  AddEvent(Token(6, "", -1.0f), &c, &d);  // held back
  AddEvent(Token(7, " é", -0.25f), &c, &d);
  AddEvent(Final(FinishReason::kLength, 3, 3, "x"), &c, &d);  // flushed text joins the last token
  EXPECT_TRUE(c.finished);
  EXPECT_EQ(c.text, " and éx");
  json lp = LogprobsJson(c, 0);
  EXPECT_EQ(lp["tokens"], json({" and", "", " éx"}));
  EXPECT_EQ(lp["token_logprobs"], json({-0.5, -1.0, -0.25}));
  EXPECT_EQ(lp["text_offset"], json({0, 4, 4}));
  // logprobs 0: no alternatives, one (empty) entry per token.
  EXPECT_EQ(lp["top_logprobs"], json::array({json::object(), json::object(), json::object()}));
  EXPECT_EQ(LogprobsJson(c, 2)["tokens"], json({" éx"}));
}

TEST(Choice, TopLogprobsMapEachAlternativesTextToItsLogprob) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "p", "logprobs": 2})");
  ChoiceState c = StartChoice(0, r, "p");
  ChoiceDelta d;
  TokenEvent t{true, 5, " and", -0.5f, {{5, " and", -0.5f}, {9, " or", -1.5f}}};
  AddEvent(t, &c, &d);
  // Two alternatives that read alike keep the more likely (listed first).
  TokenEvent u{true, 6, " so", -2.0f, {{8, " the", -0.1f}, {3, " the", -0.2f}, {6, " so", -2.0f}}};
  AddEvent(u, &c, &d);
  json lp = LogprobsJson(c, 0);
  ASSERT_EQ(lp["top_logprobs"].size(), 2u);
  EXPECT_EQ(lp["top_logprobs"][0], json({{" and", -0.5}, {" or", -1.5}}));
  EXPECT_EQ(lp["top_logprobs"][1].size(), 2u);
  EXPECT_FLOAT_EQ(lp["top_logprobs"][1][" the"].get<float>(), -0.1f);
  EXPECT_FLOAT_EQ(lp["top_logprobs"][1][" so"].get<float>(), -2.0f);
  EXPECT_EQ(LogprobsJson(c, 1)["top_logprobs"].size(), 1u);
}

TEST(Choice, EchoStartsWithThePromptAndOffsetsCountCharacters) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "é p", "echo": true})");
  r.logprobs = 1;  // no prompt-scores event here: the offsets of generated tokens count the prompt
  ChoiceState c = StartChoice(0, r, "é p");
  ChoiceDelta d;
  AddEvent(Token(5, "q", -0.5f), &c, &d);
  EXPECT_EQ(c.text, "é pq");
  EXPECT_EQ(LogprobsJson(c, 0)["text_offset"], json({3}));  // "é p" is 3 characters, 4 bytes
}

TEST(Completion, ObjectShape) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": ["a", "b"], "n": 2})");
  std::vector<ChoiceState> choices;
  for (int i = 0; i < 4; ++i) {
    choices.push_back(StartChoice(i, r, r.prompts[i / 2]));
    ChoiceDelta d;
    AddEvent(Token(1, "t", -1), &choices.back(), &d);
    AddEvent(Final(i == 0 ? FinishReason::kStopSequence : FinishReason::kLength, 10 + i / 2, 1), &choices.back(), &d);
  }
  json j = CompletionJson("cmpl-1", 123, "lm", choices, 2);
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 123);
  EXPECT_EQ(j["model"], "lm");
  ASSERT_EQ(j["choices"].size(), 4u);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(j["choices"][3]["index"], 3);
  EXPECT_EQ(j["choices"][3]["text"], "t");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  // Prompt tokens once per prompt, completion tokens of every choice.
  EXPECT_EQ(j["usage"], json({{"prompt_tokens", 21}, {"completion_tokens", 4}, {"total_tokens", 25}}));
}

TEST(Completion, EndOfSequenceIsStop) {
  EXPECT_STREQ(FinishReasonName(FinishReason::kEndOfSequence), "stop");
  EXPECT_STREQ(FinishReasonName(FinishReason::kStopSequence), "stop");
  EXPECT_STREQ(FinishReasonName(FinishReason::kLength), "length");
}

TEST(Completion, StreamChunks) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "p", "stream": true})");
  ChoiceState c = StartChoice(0, r, "p");
  ChoiceDelta d;
  AddEvent(Token(1, "x", -1), &c, &d);
  json chunk = ChunkJson("cmpl-2", 5, "lm", c, d, false, /*include_usage=*/false);
  EXPECT_FALSE(chunk.contains("usage"));  // as OpenAI: no usage field unless asked for
  EXPECT_TRUE(ChunkJson("cmpl-2", 5, "lm", c, d, false, /*include_usage=*/true)["usage"].is_null());
  EXPECT_EQ(chunk["object"], "text_completion");
  ASSERT_EQ(chunk["choices"].size(), 1u);
  EXPECT_EQ(chunk["choices"][0]["text"], "x");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  AddEvent(Final(FinishReason::kEndOfSequence, 2, 1), &c, &d);
  chunk = ChunkJson("cmpl-2", 5, "lm", c, d, true, false);
  EXPECT_EQ(chunk["choices"][0]["finish_reason"], "stop");
  json usage = UsageChunkJson("cmpl-2", 5, "lm", {c}, 1);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 3);
}

TEST(Errors, OpenAIShape) {
  json e = ErrorJson("bad", "invalid_request_error", "n");
  EXPECT_EQ(e["error"]["message"], "bad");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "n");
  EXPECT_TRUE(e["error"]["code"].is_null());
  json nf = StatusErrorJson(absl::NotFoundError("no model x"));
  EXPECT_EQ(nf["error"]["code"], "model_not_found");
  EXPECT_TRUE(nf["error"]["param"].is_null());
  EXPECT_EQ(StatusErrorJson(absl::ResourceExhaustedError("full"))["error"]["type"], "rate_limit_error");
  EXPECT_EQ(StatusErrorJson(absl::UnavailableError("draining"))["error"]["type"], "server_error");
  EXPECT_EQ(StatusErrorJson(absl::UnauthenticatedError("who"))["error"]["type"], "authentication_error");
}

TEST(Models, ListsReadyLanguageModels) {
  std::vector<ModelSnapshot> models(4);
  models[0].name = "lm";
  models[0].family = model::ModelFamily::kLanguageModel;
  models[0].state = ModelState::kReady;
  models[1].name = "vit";
  models[1].family = model::ModelFamily::kImageClassifier;
  models[1].state = ModelState::kReady;
  models[2].name = "loading_lm";
  models[2].family = model::ModelFamily::kLanguageModel;
  models[2].state = ModelState::kLoading;
  models[3].name = "unreadable";
  json j = ModelsJson(models, 77);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "lm");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["created"], 77);
  EXPECT_EQ(j["data"][0]["owned_by"], "elliptical-server");
}

TEST(Utf8, CountsCodePoints) {
  EXPECT_EQ(Utf8Chars(""), 0);
  EXPECT_EQ(Utf8Chars("abc"), 3);
  EXPECT_EQ(Utf8Chars("é"), 1);
  EXPECT_EQ(Utf8Chars("日本"), 2);
}

TEST(Choice, EchoWithLogprobsScoresThePromptFirst) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": "a bé", "echo": true, "logprobs": 0})");
  EXPECT_TRUE(ToGenerateRequest(r, 0, 0).prompt_logprobs);
  EXPECT_FALSE(ToGenerateRequest(Parse(R"({"model": "lm", "prompt": "p", "logprobs": 0})"), 0, 0).prompt_logprobs);
  ChoiceState c = StartChoice(0, r, "a bé");
  PromptScoresEvent scores;
  GenerationStream::ScoredToken first, second;
  first.id = 3;
  first.text = "a";
  first.logprob = std::numeric_limits<float>::quiet_NaN();
  second.id = 4;
  second.text = " bé";
  second.has_logprob = true;
  second.logprob = -2.5f;
  scores.tokens = {first, second};
  ChoiceDelta d;
  AddEvent(scores, &c, &d);
  EXPECT_EQ(d.text, "a bé");  // the echoed prompt goes with the first chunk
  ChoiceDelta d2;
  AddEvent(Token(5, "!", -0.5f), &c, &d2);
  EXPECT_EQ(d2.text, "!");
  json lp = LogprobsJson(c, 0);
  EXPECT_EQ(lp["tokens"], json({"a", " bé", "!"}));
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_EQ(lp["token_logprobs"][1], -2.5);
  EXPECT_EQ(lp["text_offset"], json({0, 1, 4}));
  EXPECT_EQ(c.text, "a bé!");
}

TEST(Choice, MaxTokensZeroWithEchoIsAScoringRequest) {
  CompletionRequest r = Parse(R"({"model": "lm", "prompt": ["x", "y z"], "max_tokens": 0, "echo": true, "logprobs": 1})");
  ScoreRequest s = ToScoreRequest(r, 1);
  EXPECT_EQ(s.model_name, "lm");
  EXPECT_EQ(s.text, "y z");
  EXPECT_FALSE(s.append_eos);
}


}  // namespace
}  // namespace elliptical::server::openai
