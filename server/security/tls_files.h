// The PEM files of the server's TLS identity and of the CA its clients' certificates must chain
// to, read and checked with OpenSSL at start-up. gRPC itself only parses them when the port is
// bound and then reports a generic "cannot listen"; checking here lets the error name the flag,
// the file and what is wrong with it (no certificate, no key, key of another certificate,
// expired).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace elliptical::server::security {

struct TlsFiles {
  std::string cert_file;       // --tls_cert_file: the server's certificate chain, leaf first
  std::string key_file;        // --tls_key_file: its private key (unencrypted PEM)
  std::string client_ca_file;  // --tls_client_ca_file: empty unless clients present certificates
};

struct TlsMaterial {
  std::string cert_chain_pem;
  std::string private_key_pem;
  std::string client_ca_pem;  // empty when no client CA was given
};

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files);

}  // namespace elliptical::server::security
