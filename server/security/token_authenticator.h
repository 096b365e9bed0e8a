// The decision of whether one call may proceed: its method (the HTTP/2 :path) and its
// `authorization` metadata against the server's bearer tokens and exemption policy. Knows nothing
// of gRPC's types, so it is tested as plain code; server_credentials.cc calls it for every call.
//
// Thread-safety: immutable after construction; Check() may be called from any thread.
#pragma once

#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/security/secret_set.h"

namespace elliptical::server::security {

// Services that answer without a token (--auth_exempt).
struct AuthExemptions {
  // Health is exempt by default: kubelet probes, load balancers and `grpc_health_probe` have no
  // way to carry a per-deployment token, and the answer (SERVING or not) reveals nothing a
  // token protects. A deployment that considers even that too much says --auth_exempt=none.
  bool health = true;
  // Reflection describes every RPC and message; it stays behind the token unless asked for.
  bool reflection = false;
};

// "health", "reflection", "health,reflection", or "none" (or empty): nothing exempt.
absl::StatusOr<AuthExemptions> ParseAuthExempt(absl::string_view value);

// The token of an authorization value "Bearer <token>" (RFC 7235: the scheme in any case,
// separated by spaces, surrounding blanks ignored); nullopt for another scheme or no token.
std::optional<absl::string_view> BearerToken(absl::string_view authorization);

class TokenAuthenticator {
 public:
  TokenAuthenticator(SecretSet tokens, AuthExemptions exempt)
      : tokens_(std::move(tokens)), exempt_(exempt) {}

  // `tokens`: every token the server accepts (--auth_tokens_file's and --repository_tokens_file's).
  // OK, or UNAUTHENTICATED with what the caller should do. `method` is "/package.Service/Method";
  // `authorization` the value of the call's authorization metadata, nullopt when absent. The
  // message never repeats the presented token.
  absl::Status Check(absl::string_view method, std::optional<absl::string_view> authorization) const;

 private:
  bool IsExempt(absl::string_view method) const;

  const SecretSet tokens_;
  const AuthExemptions exempt_;
};

}  // namespace elliptical::server::security
