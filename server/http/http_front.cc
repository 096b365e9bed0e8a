#include "server/http/http_front.h"

#include <signal.h>

#include <optional>
#include <utility>

#include <httplib.h>
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
#include <openssl/ssl.h>
#endif

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/http/http_status.h"
#include "server/http/kserve_routes.h"
#include "server/http/openai_json.h"
#include "server/http/openai_routes.h"
#include "server/log.h"

namespace elliptical::server {
namespace {

// Errors in the shape of the protocol the path belongs to: OpenAI's object under /v1/, the
// Open Inference Protocol's {"error": "..."} elsewhere.
void SendError(const httplib::Request& req, httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  nlohmann::json body;
  if (absl::StartsWith(req.path, "/v1/")) {
    body = openai::ErrorJson(message, openai::ErrorTypeFor(status), "",
                             status == 401 ? "invalid_api_key" : status == 404 ? "not_found" : "");
  } else {
    body = {{"error", message}};
  }
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

std::string DefaultMessage(int status, size_t max_body_bytes) {
  switch (status) {
    case 400: return "the request is malformed";
    case 404: return "no such route";
    case 405: return "method not allowed on this route";
    case 413: return absl::StrCat("the request body is larger than the server's limit of ", max_body_bytes,
                                  " bytes (--max_http_body_bytes)");
    case 414: return "the request URI is too long";
    default: return absl::StrCat("HTTP ", status);
  }
}

#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
// The SSL context of the TLS port: the gRPC port's certificate, key and client-certificate
// policy (server_security.cc checked the files and the mode).
bool SetUpTls(const HttpFrontOptions& o, SSL_CTX& ctx) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, o.tls_cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(&ctx, o.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(&ctx) != 1) {
    return false;
  }
  std::string mode = o.tls_client_auth;
  if (mode.empty()) mode = o.tls_client_ca_file.empty() ? "none" : "require";
  if (mode == "none") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_NONE, nullptr);
    return true;
  }
  if (o.tls_client_ca_file.empty() || SSL_CTX_load_verify_locations(&ctx, o.tls_client_ca_file.c_str(), nullptr) != 1) {
    return false;
  }
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.tls_client_ca_file.c_str())) {
    SSL_CTX_set_client_CA_list(&ctx, names);
  }
  SSL_CTX_set_verify(&ctx, mode == "require" ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
                     nullptr);
  return true;
}
#endif

}  // namespace

absl::StatusOr<std::unique_ptr<HttpFront>> HttpFront::Start(const HttpFrontOptions& options, InferenceCalls& calls) {
  if (options.threads < 1 || options.threads > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_threads=", options.threads, ": expected 1 to 1024 worker threads"));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls_cert_file and --tls_key_file");
  }
  // A client that closes its connection mid-stream must fail a write, not kill the process
  // (cpp-httplib sends without MSG_NOSIGNAL). gRPC ignores SIGPIPE as well.
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<HttpFront> front(new HttpFront());
  if (!options.tls_cert_file.empty()) {
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
    return absl::FailedPreconditionError(
        "TLS is on (--tls_cert_file) but this build's cpp-httplib has no TLS support: disable the "
        "HTTP port (--http_port=-1) or terminate TLS in front of it");
#else
    auto tls = std::make_unique<httplib::SSLServer>(
        [&options](SSL_CTX& ctx) { return SetUpTls(options, ctx); });
    if (!tls->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the HTTP port cannot use --tls_cert_file=", options.tls_cert_file, " and --tls_key_file=",
          options.tls_key_file, " (or --tls_client_ca_file): OpenSSL refused them"));
    }
    front->server_ = std::move(tls);
#endif
  } else {
    front->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& server = *front->server_;
  const int threads = options.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  server.set_payload_max_length(options.max_body_bytes);

  // Authentication before routing (and before the body is read): the gRPC port's check.
  if (options.authenticator) {
    auto authenticator = options.authenticator;
    const bool health_exempt = options.health_exempt;
    server.set_pre_routing_handler([authenticator, health_exempt](const httplib::Request& req,
                                                                  httplib::Response& res) {
      if (health_exempt && absl::StartsWith(req.path, "/v2/health/")) return httplib::Server::HandlerResponse::Unhandled;
      const bool has = req.has_header("Authorization");
      const std::string value = has ? req.get_header_value("Authorization") : std::string();
      const absl::Status s =
          authenticator->Check(req.path, has ? std::optional<absl::string_view>(value) : std::nullopt);
      if (s.ok()) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      SendError(req, res, 401, std::string(s.message()));
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  const size_t max_body = options.max_body_bytes;
  // cpp-httplib's own refusals (413, 404, ...) come without a body: give them the protocol's.
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [max_body](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        SendError(req, res, res.status, DefaultMessage(res.status, max_body));
        return httplib::Server::HandlerResponse::Handled;
      }));
  server.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LogError("HTTP %s %s: %s", req.method, req.path, what);
    SendError(req, res, 500, "internal error");
  });

  AddKServeRoutes(server, calls);
  OpenAIOptions openai_options;
  openai_options.models_created = absl::ToUnixSeconds(absl::Now());
  AddOpenAIRoutes(server, calls, openai_options);

  if (options.port == 0) {
    front->port_ = server.bind_to_any_port(options.host);
    if (front->port_ <= 0) front->port_ = 0;
  } else if (server.bind_to_port(options.host, options.port)) {
    front->port_ = options.port;
  }
  if (front->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.host, ":", options.port, " (--http_port)"));
  }
  front->listener_ = std::thread([&server] { server.listen_after_bind(); });
  return front;
}

void HttpFront::Stop() {
  if (!server_) return;
  server_->stop();
  if (listener_.joinable()) listener_.join();
}

HttpFront::~HttpFront() { Stop(); }

}  // namespace elliptical::server
