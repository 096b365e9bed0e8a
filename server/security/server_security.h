// What main() asks of server/security/: from the security flags, the credentials of the gRPC
// port (plaintext or TLS, optionally requiring client certificates, optionally requiring a
// bearer token on every call) and the check of the /metrics endpoint's basic auth. Every file is
// read and checked here, before any model loads, so a bad flag fails start-up at once with the
// flag and file named.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/security/repository_access.h"
#include "server/security/token_authenticator.h"

namespace elliptical::server::security {

struct SecurityOptions {
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // none | request | require; empty: require when tls_client_ca_file is set, else none.
  // "request" asks for a certificate and verifies one that is sent; "require" also refuses a
  // client that sends none. A certificate is never accepted unverified.
  std::string tls_client_auth;
  std::string auth_tokens_file;
  std::string auth_exempt = "health";  // see AuthExemptions
  std::string metrics_auth_file;       // user:password lines; empty: /metrics is open
  // Who may load and unload models (repository_access.h).
  std::string repository_tokens_file;
  std::string repository_access = "auto";
};

struct ServerSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Basic-auth check for /metrics (prometheus::Exposer::RegisterAuth's signature); empty when
  // the endpoint is open.
  std::function<bool(const std::string& user, const std::string& password)> metrics_auth;
  // The bearer-token check of the gRPC port, shared with the HTTP front (server/http_front.h); null when
  // no token is required.
  std::shared_ptr<const TokenAuthenticator> authenticator;
  bool health_exempt = true;  // --auth_exempt includes health
  // Who may load and unload models; the gRPC port applies it to every call already, the HTTP
  // front to its repository routes. Never null.
  std::shared_ptr<const RepositoryAccess> repository_access;
  bool tls = false;
  bool tokens = false;
  std::string summary;  // one phrase for the start-up log: "TLS, client certificates required, ..."
};

absl::StatusOr<ServerSecurity> BuildServerSecurity(const SecurityOptions& options);

// A log line when `host` accepts connections from other machines while TLS or tokens are off;
// empty when it is loopback only or both are on.
std::string ExposureWarning(absl::string_view host, const ServerSecurity& security);

}  // namespace elliptical::server::security
