// The HTTP front: a port of its own (--http_port) serving the KServe v2 REST API
// (kserve_routes.h) and OpenAI's completions API (openai_routes.h), both through InferenceCalls,
// on the event-driven transport of http_server.h, under the gRPC port's security: the same TLS
// certificate and client-certificate policy, the same bearer tokens checked by the same
// TokenAuthenticator (`Authorization: Bearer <token>`, checked on the request head before any
// body is read; /v2/health/* exempt when --auth_exempt exempts health), 401 in the protocol's
// error shape. Errors of every kind come in the shape of the path's protocol.
//
// With `serve_metrics`, GET /metrics answers the metrics registry's exposition here too (routers
// scrape the inference port), guarded as the metrics port is: HTTP basic auth when
// --metrics_auth_file is set, otherwise open; bearer tokens do not apply to it (a router's
// scraper holds no inference token; --http_metrics=false keeps it off this port).
//
// Shutdown (main.cc): Drain() at once (idle and slow connections close; new ones are answered
// once, without keep-alive) while InferenceCalls' drain refuses new calls (UNAVAILABLE: 503
// here) and accepted ones finish; Stop() then closes the port.
//
// Thread-safety: Start, Drain and Stop from one thread; the routes run on the transport's threads.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/inference_calls.h"
#include "server/transport/http/http_server.h"
#include "server/metrics/server_metrics.h"
#include "server/core/repository_calls.h"
#include "server/security/repository_access.h"
#include "server/security/token_authenticator.h"

namespace elliptical::server {

struct HttpFrontOptions {
  // The port, its threads, limits, deadlines and TLS (the handler and hooks are the front's own).
  HttpServerOptions transport;
  // Null: no token required.
  std::shared_ptr<const security::TokenAuthenticator> authenticator;
  bool health_exempt = true;  // --auth_exempt includes health
  ServerMetrics* metrics = nullptr;  // optional: connection and refusal counts
  bool serve_metrics = false;        // GET /metrics (needs `metrics`)
  ServerMetrics::BasicAuth metrics_auth;  // null: /metrics is open
  // KServe's repository extension (/v2/repository/...): absent without `repository`; loads and
  // unloads pass `repository_access` (null: everyone) after the token check.
  RepositoryCalls* repository = nullptr;
  std::shared_ptr<const security::RepositoryAccess> repository_access;
};

class HttpFront {
 public:
  // Binds the port and starts serving; INVALID_ARGUMENT for bad options, UNAVAILABLE when the
  // port cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpFront>> Start(const HttpFrontOptions& options, InferenceCalls& calls);

  int port() const { return server_->port(); }
  void Drain() { server_->Drain(); }
  // Closes the port; answers being written get a moment, the rest are cut. Idempotent.
  void Stop() { server_->Stop(); }

 private:
  HttpFront() = default;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace elliptical::server
