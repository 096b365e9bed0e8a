#include "server/security/repository_access.h"

#include "absl/strings/str_cat.h"
#include "server/security/token_authenticator.h"

namespace elliptical::server::security {
namespace {

// The RPCs that load or unload models, on every gRPC service that has them.
constexpr absl::string_view kChangeMethods[] = {
    "/inference.GRPCInferenceService/RepositoryModelLoad",
    "/inference.GRPCInferenceService/RepositoryModelUnload",
    "/elliptical.v1.InferenceService/LoadModel",
    "/elliptical.v1.InferenceService/UnloadModel",
};

}  // namespace

absl::StatusOr<RepositoryAccessMode> ParseRepositoryAccess(absl::string_view value) {
  if (value == "auto") return RepositoryAccessMode::kAuto;
  if (value == "repository_tokens") return RepositoryAccessMode::kRepositoryTokens;
  if (value == "inference_tokens") return RepositoryAccessMode::kInferenceTokens;
  if (value == "none") return RepositoryAccessMode::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("--repository_access=", value, ": expected auto, repository_tokens, inference_tokens or none"));
}

bool ChangesRepository(absl::string_view method) {
  for (absl::string_view change : kChangeMethods) {
    if (method == change) return true;
  }
  return false;
}

absl::StatusOr<RepositoryAccess> RepositoryAccess::Create(RepositoryAccessMode mode,
                                                          std::optional<SecretSet> repository_tokens,
                                                          bool inference_tokens) {
  switch (mode) {
    case RepositoryAccessMode::kAuto:
      if (repository_tokens) return RepositoryAccess(Rule::kRepositoryTokens, std::move(repository_tokens));
      return RepositoryAccess(inference_tokens ? Rule::kRefusedAuto : Rule::kOpen, std::nullopt);
    case RepositoryAccessMode::kRepositoryTokens:
      if (!repository_tokens) {
        return absl::InvalidArgumentError(
            "--repository_access=repository_tokens needs --repository_tokens_file: the bearer tokens allowed to "
            "load and unload models");
      }
      return RepositoryAccess(Rule::kRepositoryTokens, std::move(repository_tokens));
    case RepositoryAccessMode::kInferenceTokens:
      // Without inference tokens every call is admitted, and so is every change.
      return RepositoryAccess(inference_tokens ? Rule::kAdmitted : Rule::kOpen, std::move(repository_tokens));
    case RepositoryAccessMode::kNone:
      return RepositoryAccess(Rule::kRefused, std::nullopt);
  }
  return absl::InternalError("unknown --repository_access mode");
}

absl::Status RepositoryAccess::Check(absl::string_view method, std::optional<absl::string_view> authorization) const {
  if (!ChangesRepository(method)) return absl::OkStatus();
  return CheckChange(authorization);
}

absl::Status RepositoryAccess::CheckChange(std::optional<absl::string_view> authorization) const {
  switch (rule_) {
    case Rule::kOpen:
    case Rule::kAdmitted:
      return absl::OkStatus();
    case Rule::kRefused:
      return absl::PermissionDeniedError(
          "loading and unloading models is turned off on this server (--repository_access=none)");
    case Rule::kRefusedAuto:
      return absl::PermissionDeniedError(
          "loading and unloading models needs a repository token: this server requires inference tokens "
          "(--auth_tokens_file) and has no --repository_tokens_file (--repository_access=auto); an operator "
          "sets --repository_tokens_file, or --repository_access=inference_tokens to let inference tokens "
          "change the repository");
    case Rule::kRepositoryTokens: {
      std::optional<absl::string_view> token;
      if (authorization) token = BearerToken(*authorization);
      if (token && tokens_->Contains(*token)) return absl::OkStatus();
      return absl::PermissionDeniedError(absl::StrCat(
          "loading and unloading models needs a bearer token from --repository_tokens_file",
          !authorization ? " (the call sent none)"
          : !token       ? " (the authorization is not \"Bearer <token>\")"
                         : " (the token sent is not one of them)"));
    }
  }
  return absl::InternalError("unknown repository access rule");
}

std::string RepositoryAccess::Summary() const {
  switch (rule_) {
    case Rule::kOpen: return "repository changes: open (no token needed)";
    case Rule::kAdmitted: return "repository changes: any inference token";
    case Rule::kRepositoryTokens:
      return absl::StrCat("repository changes: repository tokens (", tokens_->size(), ")");
    case Rule::kRefusedAuto: return "repository changes: refused (inference tokens only; no --repository_tokens_file)";
    case Rule::kRefused: return "repository changes: refused (--repository_access=none)";
  }
  return "";
}

}  // namespace elliptical::server::security
