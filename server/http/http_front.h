// The HTTP front: a port of its own (--http_port) serving the KServe v2 REST API
// (kserve_routes.h) and OpenAI's completions API (openai_routes.h), both through InferenceCalls,
// under the gRPC port's security: the same TLS certificate and client-certificate policy, the
// same bearer tokens checked by the same TokenAuthenticator (`Authorization: Bearer <token>`;
// health routes /v2/health/* exempt when --auth_exempt exempts health), 401 in the protocol's
// error shape. Request bodies beyond max_body_bytes get 413.
//
// Threads: cpp-httplib serves a connection on one worker of a fixed pool (`threads`) for as long
// as it is open (keep-alive included); connections beyond the pool queue until a worker is
// free. A streaming completion holds its worker for the whole stream.
//
// Shutdown (main.cc): InferenceCalls' drain refuses new calls (UNAVAILABLE: 503 here) while
// accepted ones finish; Stop() then closes the port and joins the workers.
//
// Thread-safety: Start and Stop from one thread; the handlers run on the pool.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/calls/inference_calls.h"
#include "server/security/token_authenticator.h"

namespace httplib {
class Server;
}

namespace elliptical::server {

struct HttpFrontOptions {
  std::string host = "0.0.0.0";
  int port = 8502;  // 0: a free one (port() says which)
  int threads = 16;
  size_t max_body_bytes = 64 << 20;
  // TLS, as the gRPC port's flags (already checked by security::BuildServerSecurity); empty
  // cert: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  std::string tls_client_auth;  // none | request | require; empty: require with a CA file
  // Null: no token required.
  std::shared_ptr<const security::TokenAuthenticator> authenticator;
  bool health_exempt = true;  // --auth_exempt includes health
};

class HttpFront {
 public:
  // Binds the port and starts serving; INVALID_ARGUMENT for bad options, UNAVAILABLE when the
  // port cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpFront>> Start(const HttpFrontOptions& options, InferenceCalls& calls);
  ~HttpFront();  // Stop()

  int port() const { return port_; }
  // Closes the port and waits for the workers: a stream still open is cut. Idempotent.
  void Stop();

 private:
  HttpFront() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace elliptical::server
