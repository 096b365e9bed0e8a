// A set of secrets (bearer tokens, user:password pairs) that answers "is this one of them?"
// without the answer's timing revealing which secret matched, how many bytes of a guess were
// right, or how long the stored secrets are.
//
// Only SHA-256 digests are kept: every membership test compares fixed-size digests, visits every
// stored secret (no early exit on a match), and the plain secrets do not stay in memory.
//
// Thread-safety: immutable after construction; Contains() may be called from any thread.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace elliptical::server::security {

class SecretSet {
 public:
  explicit SecretSet(const std::vector<std::string>& secrets);

  bool Contains(absl::string_view candidate) const;
  size_t size() const { return digests_.size(); }

 private:
  using Digest = std::array<unsigned char, 32>;
  static Digest Hash(absl::string_view text);

  std::vector<Digest> digests_;
};

}  // namespace elliptical::server::security
