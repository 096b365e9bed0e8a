#include "server/security/server_security.h"

#include <grpc/grpc_security.h>

#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/security/core_credentials.h"
#include "server/security/credential_files.h"
#include "server/security/repository_access.h"
#include "server/security/secret_set.h"
#include "server/security/tls_files.h"
#include "server/security/token_authenticator.h"

namespace elliptical::server::security {
namespace {

absl::StatusOr<grpc_ssl_client_certificate_request_type> ClientCertificateRequest(
    const SecurityOptions& o) {
  std::string mode = o.tls_client_auth;
  if (mode.empty()) mode = o.tls_client_ca_file.empty() ? "none" : "require";
  if (mode == "none") {
    if (!o.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca_file is set but --tls_client_auth=none would never use it; say "
          "--tls_client_auth=require (or request), or drop the CA file");
    }
    return GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  }
  if (mode != "request" && mode != "require") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_client_auth=", mode, ": expected none, request or require"));
  }
  if (o.tls_client_ca_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_client_auth=", mode,
        " needs --tls_client_ca_file: the CA that client certificates must chain to"));
  }
  return mode == "require" ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                           : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
}

// The core credentials of the gRPC port: SSL when any TLS flag is set, else plaintext.
absl::StatusOr<grpc_server_credentials*> CoreCredentials(const SecurityOptions& o,
                                                         std::vector<std::string>* summary) {
  const bool tls = !o.tls_cert_file.empty() || !o.tls_key_file.empty() ||
                   !o.tls_client_ca_file.empty();
  if (!tls) {
    if (!o.tls_client_auth.empty() && o.tls_client_auth != "none") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tls_client_auth=", o.tls_client_auth,
          " needs TLS: give --tls_cert_file, --tls_key_file and --tls_client_ca_file"));
    }
    summary->push_back("plaintext");
    return grpc_insecure_server_credentials_create();
  }
  absl::StatusOr<TlsMaterial> m =
      LoadTlsMaterial({o.tls_cert_file, o.tls_key_file, o.tls_client_ca_file});
  if (!m.ok()) return m.status();
  absl::StatusOr<grpc_ssl_client_certificate_request_type> request = ClientCertificateRequest(o);
  if (!request.ok()) return request.status();
  summary->push_back("TLS");
  if (*request == GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY) {
    summary->push_back("client certificates required");
  } else if (*request == GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY) {
    summary->push_back("client certificates verified when sent");
  }
  grpc_ssl_pem_key_cert_pair pair = {m->private_key_pem.c_str(), m->cert_chain_pem.c_str()};
  // Core copies the PEM strings; `m` may go when this returns.
  return grpc_ssl_server_credentials_create_ex(
      m->client_ca_pem.empty() ? nullptr : m->client_ca_pem.c_str(), &pair, 1, *request, nullptr);
}

// The tokens of a token file flag, read and checked.
absl::StatusOr<std::vector<std::string>> ReadTokens(absl::string_view flag, const std::string& path) {
  absl::StatusOr<std::string> content = ReadFlagFile(flag, path);
  if (!content.ok()) return content.status();
  return ParseTokenFile(*content, absl::StrCat("--", flag, "=", path));
}

// The token check of every call: --auth_tokens_file's tokens and --repository_tokens_file's
// (a token that may change the repository may also call what inference tokens call). Null when
// --auth_tokens_file is not set: then inference needs no token, whatever guards the repository.
absl::StatusOr<std::shared_ptr<const TokenAuthenticator>> Authenticator(
    const SecurityOptions& o, const std::vector<std::string>& repository_tokens, std::vector<std::string>* summary) {
  absl::StatusOr<AuthExemptions> exempt = ParseAuthExempt(o.auth_exempt);
  if (!exempt.ok()) return exempt.status();
  if (o.auth_tokens_file.empty()) return nullptr;
  absl::StatusOr<std::vector<std::string>> tokens = ReadTokens("auth_tokens_file", o.auth_tokens_file);
  if (!tokens.ok()) return tokens.status();
  std::vector<std::string> exempted;
  if (exempt->health) exempted.push_back("health");
  if (exempt->reflection) exempted.push_back("reflection");
  summary->push_back(absl::StrCat("bearer tokens (", tokens->size(), ")",
                                  exempted.empty() ? "" : ", exempt: ",
                                  absl::StrJoin(exempted, " and ")));
  tokens->insert(tokens->end(), repository_tokens.begin(), repository_tokens.end());
  return std::make_shared<const TokenAuthenticator>(SecretSet(*tokens), *exempt);
}

absl::StatusOr<std::shared_ptr<const RepositoryAccess>> RepositoryAccessOf(
    const SecurityOptions& o, std::vector<std::string>* repository_tokens) {
  absl::StatusOr<RepositoryAccessMode> mode = ParseRepositoryAccess(o.repository_access);
  if (!mode.ok()) return mode.status();
  std::optional<SecretSet> set;
  if (!o.repository_tokens_file.empty()) {
    absl::StatusOr<std::vector<std::string>> tokens = ReadTokens("repository_tokens_file", o.repository_tokens_file);
    if (!tokens.ok()) return tokens.status();
    *repository_tokens = *tokens;
    set.emplace(*tokens);
  }
  absl::StatusOr<RepositoryAccess> access =
      RepositoryAccess::Create(*mode, std::move(set), !o.auth_tokens_file.empty());
  if (!access.ok()) return access.status();
  return std::make_shared<const RepositoryAccess>(*std::move(access));
}

}  // namespace

absl::StatusOr<ServerSecurity> BuildServerSecurity(const SecurityOptions& options) {
  ServerSecurity security;
  std::vector<std::string> summary;
  // Tokens are read before the core credentials are made, so an error there leaks nothing.
  std::vector<std::string> repository_tokens;
  absl::StatusOr<std::shared_ptr<const RepositoryAccess>> repository_access =
      RepositoryAccessOf(options, &repository_tokens);
  if (!repository_access.ok()) return repository_access.status();
  absl::StatusOr<std::shared_ptr<const TokenAuthenticator>> authenticator =
      Authenticator(options, repository_tokens, &summary);
  if (!authenticator.ok()) return authenticator.status();
  std::vector<std::string> transport;
  absl::StatusOr<grpc_server_credentials*> core = CoreCredentials(options, &transport);
  if (!core.ok()) return core.status();
  summary.insert(summary.begin(), transport.begin(), transport.end());
  security.tls = !options.tls_cert_file.empty();
  security.tokens = *authenticator != nullptr;
  if (!security.tokens) summary.push_back("no token required");
  security.authenticator = *authenticator;
  if (absl::StatusOr<AuthExemptions> exempt = ParseAuthExempt(options.auth_exempt); exempt.ok()) {
    security.health_exempt = exempt->health;
  }
  security.repository_access = *repository_access;
  summary.push_back((*repository_access)->Summary());
  security.credentials = std::make_shared<CoreServerCredentials>(
      *core, *std::move(authenticator), (*repository_access)->open() ? nullptr : *repository_access);

  if (!options.metrics_auth_file.empty()) {
    absl::StatusOr<std::string> content = ReadFlagFile("metrics_auth_file", options.metrics_auth_file);
    if (!content.ok()) return content.status();
    absl::StatusOr<std::vector<std::string>> users =
        ParseBasicAuthFile(*content, absl::StrCat("--metrics_auth_file=", options.metrics_auth_file));
    if (!users.ok()) return users.status();
    // "user:password" is unambiguous because a user cannot contain ':'.
    auto allowed = std::make_shared<const SecretSet>(*users);
    security.metrics_auth = [allowed](const std::string& user, const std::string& password) {
      return user.find(':') == std::string::npos && allowed->Contains(absl::StrCat(user, ":", password));
    };
    summary.push_back("/metrics behind basic auth");
  }
  security.summary = absl::StrJoin(summary, ", ");
  return security;
}

std::string ExposureWarning(absl::string_view host, const ServerSecurity& security) {
  const bool loopback = host == "localhost" || host == "::1" || host == "[::1]" ||
                        host.substr(0, 4) == "127.";
  if (loopback || (security.tls && security.tokens)) return "";
  const char* missing =
      !security.tls && !security.tokens ? "without TLS and without bearer tokens"
      : !security.tls ? "without TLS: bearer tokens and data cross the network in plaintext"
                      : "without bearer tokens: any client that completes the TLS handshake may call";
  return absl::StrCat("listening on ", host, " (reachable from other machines) ", missing,
                      "; see docs/deploying.md#security");
}

}  // namespace elliptical::server::security
