// Who may change the model repository (load and unload models: KServe's RepositoryModelLoad and
// RepositoryModelUnload over gRPC and HTTP, elliptical.v1's LoadModel and UnloadModel). Reading
// the repository's index is not a change: it needs only what inference needs.
//
// --repository_access:
//   auto               repository_tokens when --repository_tokens_file is set; otherwise, when
//                      --auth_tokens_file is set, no change is allowed (an operator who gave
//                      clients inference tokens has not given them model control); with no
//                      tokens at all, every change is allowed (as Triton does)
//   repository_tokens  a change needs a bearer token from --repository_tokens_file
//   inference_tokens   any call the token check admits may change the repository
//   none               no change is allowed
// A refused change is PERMISSION_DENIED (HTTP 403), naming the flags. The tokens of
// --repository_tokens_file are also accepted for every other call (the token check holds both
// files' tokens, server_security.cc).
//
// Like TokenAuthenticator, plain code: a method (the gRPC :path) and the call's authorization
// value in, a Status out. The gRPC port applies Check() to every call in its auth metadata
// processor (core_credentials.h), before any handler runs; the HTTP routes of the changes call
// CheckChange() with the request's Authorization header.
//
// Thread-safety: immutable after construction; every method may be called from any thread.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/security/secret_set.h"

namespace elliptical::server::security {

enum class RepositoryAccessMode { kAuto, kRepositoryTokens, kInferenceTokens, kNone };

// "auto", "repository_tokens", "inference_tokens" or "none"; INVALID_ARGUMENT naming
// --repository_access otherwise.
absl::StatusOr<RepositoryAccessMode> ParseRepositoryAccess(absl::string_view value);

// Whether the gRPC method ("/package.Service/Method") changes the repository.
bool ChangesRepository(absl::string_view method);

class RepositoryAccess {
 public:
  // `repository_tokens`: --repository_tokens_file's tokens, nullopt when the flag is not set;
  // `inference_tokens`: whether --auth_tokens_file is set. INVALID_ARGUMENT for
  // repository_tokens without a repository tokens file.
  static absl::StatusOr<RepositoryAccess> Create(RepositoryAccessMode mode,
                                                 std::optional<SecretSet> repository_tokens,
                                                 bool inference_tokens);

  // OK for a method that does not change the repository; CheckChange's answer for one that does.
  absl::Status Check(absl::string_view method, std::optional<absl::string_view> authorization) const;
  // OK when a call with this authorization value (nullopt: none sent) may change the
  // repository; PERMISSION_DENIED naming the flags otherwise. The message never repeats the token.
  absl::Status CheckChange(std::optional<absl::string_view> authorization) const;

  // Whether every change is allowed, whatever the call carries (no check is needed).
  bool open() const { return rule_ == Rule::kOpen; }
  // For the start-up log: "repository changes: ...".
  std::string Summary() const;

 private:
  // What the mode resolves to once the flags are known.
  enum class Rule { kOpen, kRepositoryTokens, kAdmitted, kRefusedAuto, kRefused };
  RepositoryAccess(Rule rule, std::optional<SecretSet> tokens) : rule_(rule), tokens_(std::move(tokens)) {}

  Rule rule_;
  std::optional<SecretSet> tokens_;
};

}  // namespace elliptical::server::security
