// A SentencePiece tokenizer behind a header that includes neither SentencePiece nor Abseil:
// SentencePiece's header declares names inside namespace absl that clash with Abseil's
// (../shared/STACK.md), so only tokenizer.cc sees it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace elliptical::server {

class Tokenizer {
 public:
  // Loads a SentencePiece model file; on failure returns nullptr and sets *error to a message
  // naming the file.
  static std::unique_ptr<Tokenizer> Load(const std::string& path, std::string* error);
  ~Tokenizer();

  int vocab_size() const;
  int bos_id() const;  // -1 when the model has none
  int eos_id() const;  // -1 when the model has none

  std::vector<int32_t> Encode(const std::string& text) const;
  std::string Decode(const std::vector<int32_t>& ids) const;
  std::string IdToPiece(int32_t id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace elliptical::server
