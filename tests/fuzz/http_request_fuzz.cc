// Hostile HTTP request bodies through the HTTP front's parsers, and what follows them without a
// model: a KServe v2 /infer body (JSON, or JSON then binary tensors: Triton's binary tensor
// extension) through ParseInferRequest, the tensor mapping to elliptical.v1 Classify and Segment
// requests (a classifier and a segmenter described here, with a few labels), an answer made up
// from the mapped images back into a ModelInferResponse and the response body; and an OpenAI
// /v1/completions body through ParseCompletionRequest, its GenerateRequests and the response,
// stream-chunk and error objects built from made-up generation events (the prompt-scores event
// first when echo asks for logprobs). No server is started.
//
// Byte 0 is a control byte; the rest is the body.
//   bits 0-1  0: KServe, all JSON (no Inference-Header-Content-Length)
//             1: KServe with binary tensors: bytes 1-2 (little-endian) are the header's value,
//                the body follows them (a value past the body's end is the client's lie)
//             2, 3: OpenAI completions
//   bit 2     KServe: the models are still loading (no description, so no labels)
//   bit 3     KServe: the segmenter's masks are 16-bit class ids
// Beyond "no crash, no sanitizer report": an accepted request maps to at most the image limit,
// a response body's JSON part parses, its binary length lies within the body; an accepted
// completion request keeps OpenAI's bounds, and every object built from it serialises to JSON.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/protocols/kserve/kserve_json.h"
#include "server/protocols/openai/openai_json.h"
#include "server/protocols/kserve/request_mapping.h"
#include "server/protocols/kserve/response_mapping.h"

namespace {

namespace ks = elliptical::server::kserve;
namespace oa = elliptical::server::openai;
namespace core = elliptical::server;
using elliptical::model::ModelFamily;
using elliptical::server::ModelSnapshot;
using elliptical::server::ModelState;
using nlohmann::json;

constexpr int64_t kMaxImages = 8;
const std::vector<std::string> kClassLabels = {"tench", "goldfish", "great white shark", "tiger shark",
                                               "hammerhead", "electric ray", "stingray"};
const std::vector<std::string> kSegmentLabels = {"background", "person", "bicycle"};

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                     \
    }                                                                   \
  } while (0)

ModelSnapshot Model(const std::string& name, ModelFamily family, const std::vector<std::string>& labels,
                    bool loading) {
  ModelSnapshot m;
  m.name = name;
  m.family = family;
  if (loading) return m;
  m.state = ModelState::kReady;
  elliptical::model::ModelDescription d;
  d.family = family;
  d.device = "cpu";
  d.dtype = "float32";
  d.image_size = 224;
  d.labels = labels;
  m.description = d;
  return m;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The response body: its JSON part parses; a binary part's length lies within the body.
void CheckResponseBody(const ks::InferResponseBody& body) {
  size_t json_length = body.body.size();
  if (body.json_length) {
    CHECK(*body.json_length <= body.body.size());
    json_length = *body.json_length;
  }
  CHECK(json::accept(body.body.begin(), body.body.begin() + static_cast<std::ptrdiff_t>(json_length)));
}

// The image's side as the answer's mask: a raw image's own (bounded), a fixed size for a file.
void MaskSize(const core::ImageInput& image, int* w, int* h) {
  *w = 3;
  *h = 2;
  if ((image.kind == core::ImageInput::Kind::kPixels || image.kind == core::ImageInput::Kind::kTensor) &&
      image.width * image.height <= 4096) {
    *w = static_cast<int>(image.width);
    *h = static_cast<int>(image.height);
  }
}

core::Labels LabelsOf(const std::vector<std::string>& labels, bool loading, size_t count) {
  if (!loading) return std::make_shared<const std::vector<std::string>>(labels);
  return std::make_shared<const std::vector<std::string>>(count, std::string());
}

void Classify(const inference::ModelInferRequest& request, bool loading) {
  const ModelSnapshot model = Model("classifier", ModelFamily::kImageClassifier, kClassLabels, loading);
  inference::ModelMetadataResponse metadata;
  ks::FillModelMetadata(model, &metadata);
  CHECK(json::accept(ks::ModelMetadataJson(metadata)));
  core::VisionRequest mapped;
  auto plan = ks::MapClassifyRequest(request, model, kMaxImages, &mapped);
  if (!plan.ok()) return;
  CHECK(mapped.images.size() >= 1 && static_cast<int64_t>(mapped.images.size()) <= kMaxImages);
  CHECK(plan->top_k >= 1);
  // The answer a model would give: a probability for every class of every image (16 made-up
  // classes when the labels are unknown).
  const size_t classes = loading ? 16 : kClassLabels.size();
  core::ClassifyResult answer;
  answer.labels = LabelsOf(kClassLabels, loading, classes);
  for (size_t i = 0; i < mapped.images.size(); ++i) {
    elliptical::model::Classification c;
    for (size_t j = 0; j < classes; ++j) c.probabilities.push_back(1.0f / static_cast<float>((j + i) % classes + 2));
    answer.classifications.push_back(std::move(c));
  }
  inference::ModelInferResponse response;
  if (!ks::FillClassifyResponse(*plan, request, answer, &response).ok()) return;
  CHECK(response.outputs_size() == static_cast<int>(plan->outputs.size()));
  auto body = ks::WriteInferResponse(request, response);
  CHECK(body.ok());  // every output the mapping writes is raw and matches its shape
  CheckResponseBody(*body);
}

void Segment(const inference::ModelInferRequest& request, bool loading, bool wide_ids) {
  const ModelSnapshot model = Model("segmenter", ModelFamily::kSegmenter, kSegmentLabels, loading);
  core::VisionRequest mapped;
  auto plan = ks::MapSegmentRequest(request, model, kMaxImages, &mapped);
  if (!plan.ok()) return;
  CHECK(mapped.images.size() >= 1 && static_cast<int64_t>(mapped.images.size()) <= kMaxImages);
  // Many classes (ids past 255) where the control byte asks, as a model with more classes has.
  const size_t classes = wide_ids ? 300 : kSegmentLabels.size();
  core::SegmentResult answer;
  answer.labels = LabelsOf(kSegmentLabels, loading || wide_ids, classes);
  for (const core::ImageInput& image : mapped.images) {
    int w, h;
    MaskSize(image, &w, &h);
    elliptical::model::Segmentation m;
    m.width = w;
    m.height = h;
    for (int p = 0; p < w * h; ++p) m.class_map.push_back(static_cast<int32_t>(p % classes));
    answer.masks.push_back(std::move(m));
  }
  inference::ModelInferResponse response;
  if (!ks::FillSegmentResponse(*plan, request, answer, &response).ok()) return;  // sizes differ
  auto body = ks::WriteInferResponse(request, response);
  CHECK(body.ok());
  CheckResponseBody(*body);
}

void KServe(const std::string& body, std::optional<size_t> json_length, uint8_t control) {
  auto request = ks::ParseInferRequest(body, json_length);
  if (!request.ok()) {
    (void)ks::ErrorJson(request.status().message());
    return;
  }
  // Every input has its raw contents (JSON data encoded, or binary data as it came).
  CHECK(request->raw_input_contents_size() == request->inputs_size());
  request->set_model_name("model");
  const bool loading = control & 4;
  (void)ks::ParseRequestParameters(*request);
  Classify(*request, loading);
  Segment(*request, loading, control & 8);
}

void OpenAi(const std::string& body) {
  oa::CompletionRequest request;
  oa::RequestError error;
  if (!oa::ParseCompletionRequest(body, &request, &error)) {
    CHECK(!error.message.empty());
    (void)Dump(oa::ErrorJson(error.message, "invalid_request_error", error.param));
    return;
  }
  CHECK(!request.prompts.empty() && request.prompts.size() <= static_cast<size_t>(oa::kMaxPrompts));
  CHECK(request.n >= 1 && request.n <= oa::kMaxChoices);
  CHECK(request.prompts.size() * static_cast<size_t>(request.n) <= static_cast<size_t>(oa::kMaxTotalChoices));
  CHECK(request.max_tokens >= 0 && request.top_k >= 0);
  CHECK(!request.logprobs || (*request.logprobs >= 0 && *request.logprobs <= oa::kMaxLogprobs));
  CHECK(request.stop.size() <= 1024);
  std::vector<oa::ChoiceState> choices;
  for (size_t p = 0; p < request.prompts.size(); ++p) {
    const std::string& prompt = request.prompts[p];
    for (int i = 0; i < request.n; ++i) {
      const core::GenerateRequest generate = oa::ToGenerateRequest(request, static_cast<int>(p), i);
      CHECK(generate.prompt == prompt);
      CHECK(generate.stop.size() == request.stop.size());
      const int index = static_cast<int>(p) * request.n + i;
      oa::ChoiceState choice = oa::StartChoice(index, request, prompt);
      // Made-up generation: the prompt's bytes (cut anywhere, even inside a character) released
      // as tokens of up to 3 bytes, then the final event with held-back text of its own.
      if (request.max_tokens == 0) {  // echo alone: a scoring request
        CHECK(request.echo);
        CHECK(oa::ToScoreRequest(request, static_cast<int>(p)).text == prompt);
      }
      CHECK(generate.prompt_logprobs == (request.echo && request.logprobs.has_value()));
      std::string generated, released;
      if (generate.prompt_logprobs) {
        // The prompt-scores event: the prompt's tokens (4-byte pieces), the first without a logprob.
        core::PromptScoresEvent scores;
        for (size_t at = 0; at < prompt.size() && at < 64; at += 4) {
          elliptical::server::GenerationStream::ScoredToken t;
          t.text = prompt.substr(at, 4);
          t.has_logprob = at > 0;
          t.logprob = -1.5f;
          scores.tokens.push_back(t);
          generated += t.text;
        }
        oa::ChoiceDelta delta;
        oa::AddEvent(scores, &choice, &delta);
        if (request.stream) (void)Dump(oa::ChunkJson("cmpl-1", 1, request.model, choice, delta, false, request.include_usage));
      }
      for (size_t at = 0; at < prompt.size() && at < 48; at += 3) {
        core::TokenEvent event{true, static_cast<int32_t>(at), prompt.substr(at, 3), -static_cast<float>(at) / 8};
        oa::ChoiceDelta delta;
        oa::AddEvent(event, &choice, &delta);
        generated += event.text;
        released += event.text;
        if (request.stream) (void)Dump(oa::ChunkJson("cmpl-1", 1, request.model, choice, delta, false, request.include_usage));
      }
      core::FinishedEvent last;
      last.text = request.stop.empty() ? std::string() : request.stop[0].substr(0, 5);
      last.prompt_tokens = static_cast<int>(prompt.size());
      last.generated_tokens = static_cast<int>(choice.tokens.size());
      last.reason = request.stop.empty() ? elliptical::server::FinishReason::kLength
                                         : elliptical::server::FinishReason::kStopSequence;
      oa::ChoiceDelta delta;
      oa::AddEvent(last, &choice, &delta);
      if (!choice.tokens.empty()) generated += last.text;
      if (request.stream) (void)Dump(oa::ChunkJson("cmpl-1", 1, request.model, choice, delta, true, request.include_usage));
      CHECK(choice.finished);
      CHECK(choice.tokens.size() == choice.token_logprobs.size() && choice.tokens.size() == choice.text_offset.size());
      std::string joined;
      for (const std::string& t : choice.tokens) joined += t;
      CHECK(joined == generated);
      // The text is the echoed prompt and every event's text; the tokens concatenate to the
      // generated part once a token has been released.
      CHECK(choice.text == (request.echo ? prompt : std::string()) + released + last.text);
      CHECK(choice.text_chars == oa::Utf8Chars(choice.text));
      CHECK(std::is_sorted(choice.text_offset.begin(), choice.text_offset.end()));
      choices.push_back(std::move(choice));
    }
  }
  const json response = oa::CompletionJson("cmpl-1", 1, request.model, choices, request.n);
  CHECK(response["choices"].size() == choices.size());
  const std::string text = Dump(response);
  CHECK(json::accept(text));
  if (request.stream) (void)Dump(oa::UsageChunkJson("cmpl-1", 1, request.model, choices, request.n));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  const char* rest = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1;
  switch (control & 3) {
    case 0: KServe(std::string(rest, left), std::nullopt, control); break;
    case 1: {
      if (left < 2) return 0;
      const size_t json_length = size_t{data[1]} | size_t{data[2]} << 8;
      KServe(std::string(rest + 2, left - 2), json_length, control);
      break;
    }
    default: OpenAi(std::string(rest, left)); break;
  }
  return 0;
}
