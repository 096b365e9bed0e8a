// What the HTTP transport (http_server.h) hands to a route and what a route gives back, with no
// socket, event loop or parser in sight: a parsed request, a response, and the HttpReply through
// which a route answers once, at any later time, from any thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace elliptical::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query, e.g. "/v2/models/vit/infer"
  std::string query;   // after '?', raw; empty when none
  // In arrival order, names as the client sent them (Header() compares without case).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // decoded (chunked framing removed)
  // Path parameters a route's pattern captured ({m} -> "m"), filled by the router.
  std::vector<std::pair<std::string, std::string>> params;

  // The first header of that name (any case); nullopt when absent.
  std::optional<std::string_view> Header(std::string_view name) const;
  // A captured path parameter; "" when the pattern has none of that name.
  std::string_view Param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;  // empty: no Content-Type (and no body expected)
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type/Length
  std::string body;
};

// One request's answer. A route either Send()s a whole response or streams one (BeginStream,
// Write..., End), exactly once; calls after that, or after the client has gone, do nothing.
// Every method may be called from any thread.
class HttpReply {
 public:
  virtual ~HttpReply() = default;

  virtual void Send(HttpResponse response) = 0;

  // A streamed answer (chunked transfer coding): the head now, then each Write as one chunk.
  virtual void BeginStream(HttpResponse head) = 0;
  // Queues `data` as one chunk; `on_written(true)` runs on a transport thread once the socket
  // has taken it, `on_written(false)` when the client is gone. Backpressure: a writer that waits
  // for on_written before its next Write holds at most one chunk in memory per client.
  virtual void Write(std::string data, std::function<void(bool ok)> on_written) = 0;
  virtual void End() = 0;

  // `on_gone` runs once, on a transport thread, if the client closes its connection (or the
  // server must drop it) before the answer is complete; at once if that has already happened.
  virtual void OnClientGone(std::function<void()> on_gone) = 0;
  virtual bool client_gone() const = 0;

  // Runs `work` on a transport thread, in order with this connection's other work: for work a
  // route must not do on the thread that told it something (a model's instance thread, the
  // generation scheduler). What it writes then goes out from that thread, with no second hop.
  virtual void Post(std::function<void()> work) = 0;
  // Keeps `object` alive until this exchange is over (answered or abandoned), then drops it.
  virtual void Hold(std::shared_ptr<void> object) = 0;
};

using HttpHandler = std::function<void(HttpRequest& request, const std::shared_ptr<HttpReply>& reply)>;

}  // namespace elliptical::server
