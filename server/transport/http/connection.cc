#include "server/transport/http/connection.h"

#include "absl/strings/str_cat.h"

namespace elliptical::server::http_internal {

// server_security.cc checked the files and the mode.
absl::Status ConfigureTls(const HttpServerOptions& o, asio::ssl::context& context) {
  SSL_CTX* ctx = context.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  const auto refused = [&o] {
    return absl::InvalidArgumentError(absl::StrCat("the HTTP port cannot use --tls_cert_file=", o.tls_cert_file,
                                                   " and --tls_key_file=", o.tls_key_file,
                                                   " (or --tls_client_ca_file): OpenSSL refused them"));
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, o.tls_cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, o.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return refused();
  }
  std::string mode = o.tls_client_auth;
  if (mode.empty()) mode = o.tls_client_ca_file.empty() ? "none" : "require";
  if (mode == "none") {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return absl::OkStatus();
  }
  if (o.tls_client_ca_file.empty() || SSL_CTX_load_verify_locations(ctx, o.tls_client_ca_file.c_str(), nullptr) != 1) {
    return refused();
  }
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.tls_client_ca_file.c_str())) {
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  SSL_CTX_set_verify(ctx, mode == "require" ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
                     nullptr);
  return absl::OkStatus();
}

}  // namespace elliptical::server::http_internal
