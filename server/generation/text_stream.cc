#include "server/generation/text_stream.h"

#include <algorithm>

namespace elliptical::server {
namespace {

// Bytes at the end of `text` that could still change: an incomplete UTF-8 sequence, or the
// replacement character a decoder emits for one.
size_t UnstableTail(const std::string& text) {
  static const std::string kReplacement = "\xEF\xBF\xBD";
  if (text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0) return 3;
  // Walk back over continuation bytes to the last lead byte and check its length.
  size_t i = text.size();
  size_t continuation = 0;
  while (i > 0 && continuation < 3 && (static_cast<unsigned char>(text[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++continuation;
  }
  if (i == 0) return 0;
  const unsigned char lead = static_cast<unsigned char>(text[i - 1]);
  const size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return continuation < need ? continuation + 1 : 0;
}

}  // namespace

TextStream::TextStream(const Tokenizer* tokenizer, std::vector<std::string> stops,
                       const std::vector<int32_t>& prompt)
    : tokenizer_(tokenizer), stops_(std::move(stops)) {
  if (!prompt.empty()) {
    ids_.push_back(prompt.back());
    released_ = tokenizer_->Decode(ids_).size();
  }
}

TextStream::Update TextStream::Push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tokenizer_->Decode(ids_);
  Update update;
  // Earliest stop match wins. Only a match that starts in what is not released yet counts: a
  // released tail is never a stop's prefix (it would have been held back), except for the
  // prompt's context, which no stop may take part in. (Searching from before released_ found a
  // match straddling the prompt first and missed the one after it: "a" + "aa" with stop "aa".)
  size_t best = std::string::npos;
  for (const std::string& stop : stops_) {
    if (stop.empty()) continue;
    const size_t at = text.find(stop, released_);
    if (at != std::string::npos) best = std::min(best, at);
  }
  if (best != std::string::npos) {
    update.text = text.substr(released_, best - released_);
    released_ = best;
    update.stopped = true;
    return update;
  }
  // Hold back the longest tail that is a proper prefix of some stop sequence.
  size_t hold = UnstableTail(text);
  for (const std::string& stop : stops_) {
    if (stop.empty()) continue;
    for (size_t n = std::min(stop.size() - 1, text.size()); n > hold; --n) {
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  const size_t stable = text.size() - std::min(hold, text.size());
  if (stable > released_) {
    update.text = text.substr(released_, stable - released_);
    released_ = stable;
  }
  return update;
}

std::string TextStream::Flush() {
  const std::string text = tokenizer_->Decode(ids_);
  std::string rest = text.size() > released_ ? text.substr(released_) : "";
  released_ = text.size();
  return rest;
}

}  // namespace elliptical::server
