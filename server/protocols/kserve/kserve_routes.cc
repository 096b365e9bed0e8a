#include "server/protocols/kserve/kserve_routes.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/transport/http/http_status.h"
#include "server/protocols/kserve/kserve_json.h"
#include "server/protocols/kserve/inference_protocol.h"

namespace elliptical::server {
namespace {

constexpr char kJson[] = "application/json";
constexpr char kHeaderLength[] = "Inference-Header-Content-Length";

HttpResponse Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = kJson;
  r.body = std::move(body);
  return r;
}

HttpResponse Error(const absl::Status& status) {
  return Json(HttpStatusFor(status.code()), kserve::ErrorJson(status.message()));
}

// A boolean route: 200 when true; otherwise `status` with why.
HttpResponse Ready(bool ready, int status, const std::string& why) {
  if (ready) {
    HttpResponse r;
    r.status = 200;
    return r;
  }
  return Json(status, kserve::ErrorJson(why));
}

// One /infer: the parsed request and the response the call fills, alive until it finishes.
struct InferExchange {
  inference::ModelInferRequest request;
  inference::ModelInferResponse response;
};

void Infer(InferenceCalls& calls, HttpRequest& req, const std::shared_ptr<HttpReply>& reply) {
  std::optional<size_t> json_length;
  if (std::optional<std::string_view> header = req.Header(kHeaderLength)) {
    uint64_t length;
    if (!absl::SimpleAtoi(absl::string_view(header->data(), header->size()), &length)) {
      return reply->Send(Error(absl::InvalidArgumentError(absl::StrCat(kHeaderLength, " is not a byte count"))));
    }
    json_length = static_cast<size_t>(length);
  }
  auto parsed = kserve::ParseInferRequest(req.body, json_length);
  if (!parsed.ok()) return reply->Send(Error(parsed.status()));
  std::string().swap(req.body);  // the parsed request holds what is needed; free the bytes now
  auto exchange = std::make_shared<InferExchange>();
  exchange->request = *std::move(parsed);
  exchange->request.set_model_name(std::string(req.Param("m")));
  exchange->request.set_model_version(std::string(req.Param("v")));

  // The call finishes on a model's instance thread: the answer is written from a transport
  // thread, so the instance goes back to computing at once.
  std::shared_ptr<CallHandle> handle = kserve::StartModelInfer(
      calls, CallContext{Protocol::kKServeHttp, absl::InfiniteFuture()}, &exchange->request, &exchange->response,
      [exchange, reply](const absl::Status& status) {
        reply->Post([exchange, reply, status] {
          if (!status.ok()) return reply->Send(Error(status));
          auto body = kserve::WriteInferResponse(exchange->request, exchange->response);
          if (!body.ok()) return reply->Send(Error(body.status()));
          HttpResponse r;
          r.status = 200;
          if (body->json_length) {
            r.headers.emplace_back(kHeaderLength, std::to_string(*body->json_length));
            r.content_type = "application/octet-stream";
          } else {
            r.content_type = kJson;
          }
          r.body = std::move(body->body);
          reply->Send(std::move(r));
        });
      });
  if (handle) {
    // A client that leaves drops its queued work (or stops a batch nobody else waits for).
    reply->OnClientGone([handle] { handle->Cancel(); });
  }
}

// POST /v2/repository/models/{m}/load and /unload: checked in order (who may, then the body),
// then started; the answer is written from a transport thread once the change is over.
void RepositoryChange(const KServeRepositoryRoutes& repository, RepositoryCalls::Change change, HttpRequest& req,
                      const std::shared_ptr<HttpReply>& reply) {
  if (repository.authorize_change) {
    const std::optional<std::string_view> header = req.Header("Authorization");
    absl::Status allowed = repository.authorize_change(
        header ? std::optional<absl::string_view>(absl::string_view(header->data(), header->size())) : std::nullopt);
    if (!allowed.ok()) return reply->Send(Error(allowed));
  }
  auto finish = [reply](const absl::Status& status) {
    reply->Post([reply, status] {
      if (!status.ok()) return reply->Send(Error(status));
      HttpResponse r;  // Triton's: 200 with an empty body
      r.status = 200;
      reply->Send(std::move(r));
    });
  };
  const std::string name(req.Param("m"));
  if (change == RepositoryCalls::Change::kLoad) {
    inference::RepositoryModelLoadRequest request;
    if (absl::Status s = kserve::ParseRepositoryParameters(req.body, request.mutable_parameters()); !s.ok()) {
      return reply->Send(Error(s));
    }
    request.set_model_name(name);
    kserve::StartRepositoryModelLoad(*repository.calls, request, std::move(finish));
  } else {
    inference::RepositoryModelUnloadRequest request;
    if (absl::Status s = kserve::ParseRepositoryParameters(req.body, request.mutable_parameters()); !s.ok()) {
      return reply->Send(Error(s));
    }
    request.set_model_name(name);
    kserve::StartRepositoryModelUnload(*repository.calls, request, std::move(finish));
  }
}

}  // namespace

void AddKServeRoutes(HttpRouter& router, InferenceCalls& calls, KServeRepositoryRoutes repository) {
  InferenceCalls* c = &calls;
  router.Add("GET", "/v2", [](HttpRequest&, const std::shared_ptr<HttpReply>& reply) {
    reply->Send(Json(200, kserve::ServerMetadataJson(kserve::ServerMetadata(/*http=*/true))));
  });
  router.Add("GET", "/v2/health/live", [](HttpRequest&, const std::shared_ptr<HttpReply>& reply) {
    reply->Send(Ready(true, 200, ""));
  });
  // The protocol's boolean routes answer 200 for true and a 4xx for false.
  router.Add("GET", "/v2/health/ready", [c](HttpRequest&, const std::shared_ptr<HttpReply>& reply) {
    reply->Send(Ready(kserve::ServerReady(*c), 400, "the server is not ready: models are loading, or it is draining"));
  });
  for (const char* model : {"/v2/models/{m}", "/v2/models/{m}/versions/{v}"}) {
    router.Add("GET", absl::StrCat(model, "/ready"), [c](HttpRequest& req, const std::shared_ptr<HttpReply>& reply) {
      const std::string name(req.Param("m"));
      auto ready = kserve::ModelReady(*c, name, std::string(req.Param("v")));
      if (!ready.ok()) return reply->Send(Error(ready.status()));
      if (!*ready && !c->Describe(name).ok()) {
        return reply->Send(Error(absl::NotFoundError(absl::StrCat("no model named \"", name.substr(0, 64), "\""))));
      }
      reply->Send(Ready(*ready, 400, absl::StrCat("model \"", name, "\" is not ready")));
    });
    router.Add("GET", model, [c](HttpRequest& req, const std::shared_ptr<HttpReply>& reply) {
      auto metadata = kserve::ModelMetadata(*c, std::string(req.Param("m")), std::string(req.Param("v")));
      if (!metadata.ok()) return reply->Send(Error(metadata.status()));
      reply->Send(Json(200, kserve::ModelMetadataJson(*metadata)));
    });
    router.Add("POST", absl::StrCat(model, "/infer"),
               [c](HttpRequest& req, const std::shared_ptr<HttpReply>& reply) { Infer(*c, req, reply); });
  }
  if (!repository.calls) return;
  RepositoryCalls* r = repository.calls;
  router.Add("POST", "/v2/repository/index", [r](HttpRequest& req, const std::shared_ptr<HttpReply>& reply) {
    auto request = kserve::ParseRepositoryIndexRequest(req.body);
    if (!request.ok()) return reply->Send(Error(request.status()));
    auto index = kserve::RepositoryIndex(*r, *request);
    if (!index.ok()) return reply->Send(Error(index.status()));
    reply->Send(Json(200, kserve::RepositoryIndexJson(*index)));
  });
  auto shared = std::make_shared<const KServeRepositoryRoutes>(std::move(repository));
  router.Add("POST", "/v2/repository/models/{m}/load",
             [shared](HttpRequest& req, const std::shared_ptr<HttpReply>& reply) {
               RepositoryChange(*shared, RepositoryCalls::Change::kLoad, req, reply);
             });
  router.Add("POST", "/v2/repository/models/{m}/unload",
             [shared](HttpRequest& req, const std::shared_ptr<HttpReply>& reply) {
               RepositoryChange(*shared, RepositoryCalls::Change::kUnload, req, reply);
             });
}

}  // namespace elliptical::server
