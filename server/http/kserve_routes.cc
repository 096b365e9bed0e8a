#include "server/http/kserve_routes.h"

#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/http/http_status.h"
#include "server/http/kserve_json.h"
#include "server/kserve/inference_protocol.h"

namespace elliptical::server {
namespace {

constexpr char kJson[] = "application/json";
constexpr char kHeaderLength[] = "Inference-Header-Content-Length";
// {m} and the optional /versions/{v}: matches[1] and matches[2].
constexpr char kModel[] = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";

void SendError(httplib::Response& res, const absl::Status& status) {
  res.status = HttpStatusFor(status.code());
  res.set_content(kserve::ErrorJson(status.message()), kJson);
}

// A boolean route: 200 when true; otherwise `status` with why.
void SendReady(httplib::Response& res, bool ready, int status, const std::string& why) {
  if (ready) {
    res.status = 200;
    return;
  }
  res.status = status;
  res.set_content(kserve::ErrorJson(why), kJson);
}

std::string Version(const httplib::Request& req) { return req.matches.size() > 2 ? req.matches[2].str() : ""; }

void Infer(InferenceCalls& calls, const httplib::Request& req, httplib::Response& res) {
  std::optional<size_t> json_length;
  if (req.has_header(kHeaderLength)) {
    uint64_t length;
    if (!absl::SimpleAtoi(req.get_header_value(kHeaderLength), &length)) {
      return SendError(res, absl::InvalidArgumentError(absl::StrCat(kHeaderLength, " is not a byte count")));
    }
    json_length = static_cast<size_t>(length);
  }
  auto request = kserve::ParseInferRequest(req.body, json_length);
  if (!request.ok()) return SendError(res, request.status());
  request->set_model_name(req.matches[1].str());
  request->set_model_version(Version(req));

  // cpp-httplib's handlers are synchronous: this worker waits for the call to finish. No
  // deadline comes from the client except the request's "timeout" parameter.
  inference::ModelInferResponse response;
  absl::Notification done;
  absl::Status status;
  std::shared_ptr<CallHandle> handle = kserve::StartModelInfer(
      calls, CallContext{Protocol::kKServeHttp, absl::InfiniteFuture()}, &*request, &response,
      [&](const absl::Status& s) {
        status = s;
        done.Notify();
      });
  done.WaitForNotification();
  if (!status.ok()) return SendError(res, status);
  auto body = kserve::WriteInferResponse(*request, response);
  if (!body.ok()) return SendError(res, body.status());
  res.status = 200;
  if (body->json_length) {
    res.set_header(kHeaderLength, std::to_string(*body->json_length));
    res.set_content(std::move(body->body), "application/octet-stream");
  } else {
    res.set_content(std::move(body->body), kJson);
  }
}

}  // namespace

void AddKServeRoutes(httplib::Server& server, InferenceCalls& calls) {
  InferenceCalls* c = &calls;
  server.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kserve::ServerMetadataJson(kserve::ServerMetadata(/*http=*/true)), kJson);
  });
  server.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  // The protocol's boolean routes answer 200 for true and a 4xx for false.
  server.Get("/v2/health/ready", [c](const httplib::Request&, httplib::Response& res) {
    SendReady(res, kserve::ServerReady(*c), 400, "the server is not ready: models are loading, or it is draining");
  });
  server.Get(absl::StrCat(kModel, "/ready"), [c](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1].str();
    auto ready = kserve::ModelReady(*c, name, Version(req));
    if (!ready.ok()) return SendError(res, ready.status());
    if (!*ready && !c->Describe(name).ok()) {
      return SendError(res, absl::NotFoundError(absl::StrCat("no model named \"", name.substr(0, 64), "\"")));
    }
    SendReady(res, *ready, 400, absl::StrCat("model \"", name, "\" is not ready"));
  });
  server.Get(kModel, [c](const httplib::Request& req, httplib::Response& res) {
    auto metadata = kserve::ModelMetadata(*c, req.matches[1].str(), Version(req));
    if (!metadata.ok()) return SendError(res, metadata.status());
    res.set_content(kserve::ModelMetadataJson(*metadata), kJson);
  });
  server.Post(absl::StrCat(kModel, "/infer"),
              [c](const httplib::Request& req, httplib::Response& res) { Infer(*c, req, res); });
}

}  // namespace elliptical::server
