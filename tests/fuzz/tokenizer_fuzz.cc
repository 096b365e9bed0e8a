// The generation path's text handling with the real SentencePiece tokenizer of the shipped
// language model (models/kjv-lm; ELLIPTICAL_FUZZ_TOKENIZER names another): a prompt encoded,
// then ids decoded and streamed through TextStream with stop sequences, as the scheduler does.
//
// Input: byte 0 says how many of the following bytes are stop-sequence text (split at '\n'); the
// rest is the prompt. Ids to stream come from the encoded input, shuffled by its bytes and
// extended past the tokenizer's vocabulary: a model's vocabulary may be larger than its
// tokenizer's (servable_registry.cc allows it), so sampled ids can be ones the tokenizer lacks.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "server/generation/text_stream.h"
#include "server/generation/tokenizer.h"

namespace {

using elliptical::server::TextStream;
using elliptical::server::Tokenizer;

const Tokenizer* tokenizer = nullptr;

std::vector<std::string> SplitStops(const std::string& text) {
  std::vector<std::string> stops;
  size_t start = 0;
  while (start <= text.size() && stops.size() < 4) {
    const size_t end = text.find('\n', start);
    stops.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return stops;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("ELLIPTICAL_FUZZ_TOKENIZER");
  const std::string path = env ? env : ELLIPTICAL_SOURCE_DIR "/models/kjv-lm/tokenizer.model";
  std::string error;
  tokenizer = Tokenizer::Load(path, &error).release();
  if (!tokenizer) {
    std::fprintf(stderr, "tokenizer_fuzz: %s\n", error.c_str());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t stop_bytes = std::min<size_t>(data[0] % 16, size - 1);
  const std::string stop_text(reinterpret_cast<const char*>(data + 1), stop_bytes);
  const std::string prompt(reinterpret_cast<const char*>(data + 1 + stop_bytes), size - 1 - stop_bytes);
  const int vocab = tokenizer->vocab_size();

  const std::vector<int32_t> ids = tokenizer->Encode(prompt);
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab) std::abort();  // Encode gives only the tokenizer's own ids
  }
  (void)tokenizer->Decode(ids);

  // Stream the second half of the ids after the first half as the prompt, and a few ids the
  // tokenizer lacks; TextStream must hold back only what can still change and never release a
  // stop sequence.
  const size_t half = ids.size() / 2;
  std::vector<int32_t> context(ids.begin(), ids.begin() + half);
  std::vector<int32_t> generated(ids.begin() + half, ids.end());
  for (size_t i = 0; i < prompt.size() && i < 4; ++i) {
    generated.insert(generated.begin() + (static_cast<uint8_t>(prompt[i]) % (generated.size() + 1)),
                     vocab + static_cast<uint8_t>(prompt[i]) % 64);
  }
  const std::vector<std::string> stops = SplitStops(stop_text);
  TextStream stream(tokenizer, stops, context);
  std::string released;
  bool stopped = false;
  for (int32_t id : generated) {
    TextStream::Update update = stream.Push(id);
    released += update.text;
    if (update.stopped) {
      stopped = true;
      break;
    }
  }
  if (!stopped) released += stream.Flush();
  for (const std::string& stop : stops) {
    if (!stop.empty() && released.find(stop) != std::string::npos) {
      std::fprintf(stderr, "stop sequence \"%s\" was released in \"%s\"\n", stop.c_str(),
                   released.c_str());
      std::abort();
    }
  }
  return 0;
}
