// Turns generated token ids into the text a client sees, piece by piece, and finds stop
// sequences. Text that might be the start of a stop sequence (or an incomplete UTF-8
// character) is held back until it is known, so the stop text itself is never streamed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/generation/tokenizer.h"

namespace elliptical::server {

class TextStream {
 public:
  TextStream(const Tokenizer* tokenizer, std::vector<std::string> stops)
      : tokenizer_(tokenizer), stops_(std::move(stops)) {}

  struct Update {
    std::string text;          // newly released text (may be empty)
    bool stopped = false;      // a stop sequence matched: generation ends, its text withheld
  };

  Update Push(int32_t id);
  // Everything still held back (at the end of generation without a stop match).
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  const std::vector<std::string> stops_;
  std::vector<int32_t> ids_;
  size_t released_ = 0;  // bytes of the decoded text already released
};

}  // namespace elliptical::server
