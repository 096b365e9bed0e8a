#include "server/http_front.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/transport/http/http_router.h"
#include "server/protocols/kserve/kserve_routes.h"
#include "server/protocols/openai/openai_json.h"
#include "server/protocols/openai/openai_routes.h"

namespace elliptical::server {
namespace {

// Errors in the shape of the protocol the path belongs to: OpenAI's object under /v1/, the
// Open Inference Protocol's {"error": "..."} elsewhere.
HttpResponse ErrorResponse(const std::string& path, int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  nlohmann::json body;
  if (absl::StartsWith(path, "/v1/")) {
    body = openai::ErrorJson(message, openai::ErrorTypeFor(status), "",
                             status == 401 ? "invalid_api_key" : status == 404 ? "not_found" : "");
  } else {
    body = {{"error", message}};
  }
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

constexpr char kMetricsPath[] = "/metrics";

// True when `header` ("Basic base64(user:password)") carries credentials `auth` accepts.
bool BasicAuthAccepts(const ServerMetrics::BasicAuth& auth, std::optional<std::string_view> header) {
  if (!header) return false;
  const absl::string_view value(header->data(), header->size());  // absl's view is not std's here
  if (!absl::StartsWithIgnoreCase(value, "Basic ")) return false;
  std::string decoded;
  if (!absl::Base64Unescape(absl::StripAsciiWhitespace(value.substr(6)), &decoded)) return false;
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  return auth(decoded.substr(0, colon), decoded.substr(colon + 1));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpFront>> HttpFront::Start(const HttpFrontOptions& options, InferenceCalls& calls) {
  auto router = std::make_shared<HttpRouter>();
  KServeRepositoryRoutes repository_routes;
  repository_routes.calls = options.repository;
  if (auto access = options.repository_access; access && !access->open()) {
    repository_routes.authorize_change = [access](std::optional<absl::string_view> authorization) {
      return access->CheckChange(authorization);
    };
  }
  AddKServeRoutes(*router, calls, std::move(repository_routes));
  OpenAIOptions openai_options;
  openai_options.models_created = absl::ToUnixSeconds(absl::Now());
  AddOpenAIRoutes(*router, calls, openai_options);
  const bool serve_metrics = options.serve_metrics && options.metrics != nullptr;
  if (serve_metrics) {
    // The registry's own text, as the metrics port answers it: one serialisation per scrape.
    router->Add("GET", kMetricsPath, [m = options.metrics](HttpRequest&, const std::shared_ptr<HttpReply>& reply) {
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = m->Exposition();
      reply->Send(std::move(r));
    });
  }

  HttpServerOptions s = options.transport;
  s.error_response = ErrorResponse;
  s.handler = [router](HttpRequest& request, const std::shared_ptr<HttpReply>& reply) {
    const HttpHandler* handler = nullptr;
    switch (router->Route(request, &handler)) {
      case HttpRouter::Match::kFound: return (*handler)(request, reply);
      case HttpRouter::Match::kWrongMethod:
        return reply->Send(ErrorResponse(request.path, 405, "method not allowed on this route"));
      case HttpRouter::Match::kNoRoute: return reply->Send(ErrorResponse(request.path, 404, "no such route"));
    }
  };
  // Authentication on the head, before any body is read: the gRPC port's check, and for
  // /metrics the metrics port's.
  const ServerMetrics::BasicAuth metrics_auth = serve_metrics ? options.metrics_auth : nullptr;
  if (options.authenticator || metrics_auth) {
    auto authenticator = options.authenticator;
    const bool health_exempt = options.health_exempt;
    s.check_head = [authenticator, health_exempt, serve_metrics,
                    metrics_auth](const HttpRequest& head) -> std::optional<HttpResponse> {
      if (serve_metrics && head.path == kMetricsPath) {
        if (!metrics_auth || BasicAuthAccepts(metrics_auth, head.Header("Authorization"))) return std::nullopt;
        HttpResponse r;
        r.status = 401;
        r.content_type = "text/plain; charset=utf-8";
        r.body = "/metrics needs HTTP basic auth (--metrics_auth_file)\n";
        r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"elliptical-server metrics\"");
        return r;
      }
      if (!authenticator) return std::nullopt;
      if (health_exempt && absl::StartsWith(head.path, "/v2/health/")) return std::nullopt;
      const std::optional<std::string_view> header = head.Header("Authorization");
      const absl::Status status = authenticator->Check(
          head.path, header ? std::optional<absl::string_view>(absl::string_view(header->data(), header->size()))
                            : std::nullopt);
      if (status.ok()) return std::nullopt;
      HttpResponse r = ErrorResponse(head.path, 401, std::string(status.message()));
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    };
  }
  if (ServerMetrics* m = options.metrics) {
    s.on_connections = [m](int delta) { m->AddHttpConnections(delta); };
    s.on_connection_refused = [m] { m->RecordHttpConnectionRefused(); };
    s.on_rejected = [m](const char* reason) { m->RecordHttpRejection(reason); };
  }
  auto server = HttpServer::Start(std::move(s));
  if (!server.ok()) return server.status();
  std::unique_ptr<HttpFront> front(new HttpFront());
  front->server_ = *std::move(server);
  return front;
}

}  // namespace elliptical::server
