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
//
// Errors are {"error": "<message>"} with HttpStatusFor(code) (http_status.h). An inference is
// answered when its call finishes, from a transport thread; nothing waits for it, and a client
// that leaves first cancels it.
//
// Thread-safety: the handlers may run on any of the server's threads at once. `calls` must
// outlive the server.
#pragma once

#include "server/core/inference_calls.h"
#include "server/transport/http/http_router.h"

namespace elliptical::server {

void AddKServeRoutes(HttpRouter& router, InferenceCalls& calls);

}  // namespace elliptical::server
