// Turns generated token ids into the text a client sees, piece by piece, and finds stop
// sequences. Text that might be the start of a stop sequence (or an incomplete UTF-8
// character) is held back until it is known, so the stop text itself is never streamed.
//
// Generated text continues the prompt: a SentencePiece decoder drops the word-boundary space of
// a text's first piece, so the stream decodes after the prompt's last token (its context) and
// streams only what follows it; "said" + " unto" stays "said unto", not "saidunto".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/generation/tokenizer.h"

namespace elliptical::server {

class TextStream {
 public:
  // `prompt`: the prompt's token ids (only its last one is kept as context); may be empty.
  TextStream(const Tokenizer* tokenizer, std::vector<std::string> stops,
             const std::vector<int32_t>& prompt = {});

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
  std::vector<int32_t> ids_;  // the context token, if any, then the generated ones
  size_t released_ = 0;       // bytes of the decoded text already released (or context)
};

}  // namespace elliptical::server
