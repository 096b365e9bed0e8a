#include "server/security/secret_set.h"

#include <openssl/evp.h>

#include "server/security/constant_time.h"

namespace elliptical::server::security {

SecretSet::SecretSet(const std::vector<std::string>& secrets) {
  digests_.reserve(secrets.size());
  for (const std::string& secret : secrets) digests_.push_back(Hash(secret));
}

SecretSet::Digest SecretSet::Hash(absl::string_view text) {
  Digest digest{};
  unsigned int length = 0;
  // EVP_Digest with SHA-256 cannot fail for in-memory input short of memory exhaustion; a
  // failure leaves the all-zero digest, which matches no real secret's digest.
  EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

bool SecretSet::Contains(absl::string_view candidate) const {
  const Digest presented = Hash(candidate);
  const absl::string_view p(reinterpret_cast<const char*>(presented.data()), presented.size());
  bool found = false;
  for (const Digest& d : digests_) {
    // `|` rather than `||`: every stored digest is compared whatever came before.
    found = found | ConstantTimeEquals(p, absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
  }
  return found;
}

}  // namespace elliptical::server::security
