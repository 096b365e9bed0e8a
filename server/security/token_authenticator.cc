#include "server/security/token_authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace elliptical::server::security {
namespace {

constexpr absl::string_view kHealthPrefix = "/grpc.health.v1.Health/";
// The Open Inference Protocol's own health calls, which KServe and Triton tooling probe with.
constexpr absl::string_view kKServeHealthMethods[] = {"/inference.GRPCInferenceService/ServerLive",
                                                      "/inference.GRPCInferenceService/ServerReady",
                                                      "/inference.GRPCInferenceService/ModelReady"};
// libgrpc++_reflection serves v1alpha; v1 is listed too so that a gRPC upgrade that adds it
// does not silently put it behind (or outside) the policy.
constexpr absl::string_view kReflectionPrefixes[] = {"/grpc.reflection.v1alpha.ServerReflection/",
                                                     "/grpc.reflection.v1.ServerReflection/"};

}  // namespace

absl::StatusOr<AuthExemptions> ParseAuthExempt(absl::string_view value) {
  AuthExemptions exempt;
  exempt.health = false;
  exempt.reflection = false;
  for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    if (item == "health") {
      exempt.health = true;
    } else if (item == "reflection") {
      exempt.reflection = true;
    } else if (item != "none") {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth_exempt: unknown service \"", item,
                       "\"; expected a comma-separated list of health, reflection, or none"));
    }
  }
  return exempt;
}

std::optional<absl::string_view> BearerToken(absl::string_view authorization) {
  // RFC 7235: the scheme is case-insensitive and separated from the credentials by spaces.
  const absl::string_view value = absl::StripAsciiWhitespace(authorization);
  constexpr absl::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme) ||
      value[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  return absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
}

bool TokenAuthenticator::IsExempt(absl::string_view method) const {
  if (exempt_.health) {
    if (absl::StartsWith(method, kHealthPrefix)) return true;
    for (absl::string_view health : kKServeHealthMethods) {
      if (method == health) return true;
    }
  }
  if (exempt_.reflection) {
    for (absl::string_view prefix : kReflectionPrefixes) {
      if (absl::StartsWith(method, prefix)) return true;
    }
  }
  return false;
}

absl::Status TokenAuthenticator::Check(absl::string_view method,
                                       std::optional<absl::string_view> authorization) const {
  if (IsExempt(method)) return absl::OkStatus();
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "this server requires a bearer token: send the metadata \"authorization: Bearer <token>\" "
        "(elliptical-client --token_file=FILE, Python Client(token=...))");
  }
  const std::optional<absl::string_view> token = BearerToken(*authorization);
  if (!token) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be \"Bearer <token>\" (another scheme was sent)");
  }
  if (!tokens_.Contains(*token)) {
    return absl::UnauthenticatedError(
        "the bearer token was not accepted: it is not one of the server's --auth_tokens_file "
        "(or --repository_tokens_file) tokens (check which token the client sends)");
  }
  return absl::OkStatus();
}

}  // namespace elliptical::server::security
