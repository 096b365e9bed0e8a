// The Open Inference Protocol (KServe v2) over HTTP/REST: the routes of the v2 REST API and
// Triton's binary tensor data extension, added to the HTTP front's server. A request's JSON
// (and its binary tensors) becomes an inference::ModelInferRequest, the same message the gRPC
// service (server/protocols/kserve/kserve_service.h) receives, so both paths share one mapping to
// elliptical.v1 (server/protocols/kserve/request_mapping.h, response_mapping.h) and are served by InferenceCalls.
//
// Routes (docs/protocols/kserve.md):
//   GET  /v2                                   server metadata
//   GET  /v2/health/live, /v2/health/ready     200 when live / ready, else 400
//   GET  /v2/models/{m}[/versions/{v}]         model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready   200 when the model is ready, else 400 (404 unknown)
//   POST /v2/models/{m}[/versions/{v}]/infer   inference (JSON, or JSON + binary tensors)
//   POST /v2/repository/index                  the repository's models and versions with their
//                                              state; body optional: {"ready": true}
//   POST /v2/repository/models/{m}/load        load (or reload) a model: 200, empty body, once
//   POST /v2/repository/models/{m}/unload      it is over; body optional: {"parameters": {...}}
// Path parameters arrive percent-decoded (http_router.h).
//
// Errors are {"error": "<message>"} with HttpStatusFor(code) (http_status.h). An inference is
// answered when its call finishes, from a transport thread; nothing waits for it, and a client
// that leaves first cancels it.
//
// Thread-safety: the handlers may run on any of the server's threads at once. `calls` must
// outlive the server.
#pragma once

#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/core/inference_calls.h"
#include "server/core/repository_calls.h"
#include "server/transport/http/http_router.h"

namespace elliptical::server {

// The repository extension's routes; without `calls` they are not added (404).
struct KServeRepositoryRoutes {
  RepositoryCalls* calls = nullptr;
  // Who may load and unload: the request's Authorization header (nullopt when absent) in, OK or
  // PERMISSION_DENIED out (server/security/repository_access.h). Null: everyone.
  std::function<absl::Status(std::optional<absl::string_view> authorization)> authorize_change;
};

void AddKServeRoutes(HttpRouter& router, InferenceCalls& calls, KServeRepositoryRoutes repository = {});

}  // namespace elliptical::server
