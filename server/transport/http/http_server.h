// The HTTP/1.1 transport: Boost.Asio's event loop and Boost.Beast's request parser, serving
// every connection from a few threads. A connection costs a socket, a read buffer and a timer,
// never a thread: an idle, slow or streaming client holds no worker.
//
// Why Beast: it is in Debian 12 (libboost1.74-dev, header-only), its parser is incremental and
// allocation-bounded (header and body limits checked as bytes arrive), it rejects conflicting
// framing (Content-Length with Transfer-Encoding, differing Content-Lengths) itself, and Asio's
// SSL stream serves TLS with the OpenSSL context the gRPC port's flags describe.
//
// Per connection, in order (RFC 9112):
//   idle      waiting for a request's first byte; closed after `idle_timeout`
//   head      the request line and headers, all within `header_timeout` of their first byte
//             (a deadline for the whole head, not per byte: slowloris clients are cut); beyond
//             `max_header_bytes` 431
//   checks    Transfer-Encoding other than a final "chunked", or Content-Length with
//             Transfer-Encoding, or differing Content-Lengths: 400 and close. A declared
//             length over `max_body_bytes`: 413 before any body is read. `check_head` (the
//             bearer token) may refuse here, also before the body.
//   body      within `body_timeout`; counted after chunked decoding, 413 and close as soon as
//             it passes `max_body_bytes` (nothing beyond it is buffered); 503 and close when
//             the bodies of all connections would pass `max_body_bytes_in_flight`
//   handler   the route answers through an HttpReply, whenever it likes. Meanwhile the socket is
//             watched: a client that closes is seen at once and OnClientGone runs (the route
//             cancels its work); bytes that arrive are kept (pipelined requests, answered in
//             order after this one, up to `max_header_bytes` read ahead).
// Responses and stream chunks are written in order; a write the client does not take within
// `write_timeout` closes the connection. A stream with nothing to say for `stream_keepalive`
// gets an SSE comment line, which keeps proxies from timing it out.
//
// Connections beyond `max_connections` are refused at once (a 503 line where plaintext, then
// closed) and counted. Drain(): idle and slow connections close at once; a connection with a
// request in progress finishes it and then closes; a connection accepted afterwards has half a
// second to send one request's head (the core refuses its call during its drain: 503), then
// closes. Stop(): closes the
// port, gives responses being written `grace` to finish, closes the rest, joins the threads.
//
// Thread-safety: Start, Drain and Stop from one thread; handlers run on the event-loop threads.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/transport/http/http_message.h"

namespace elliptical::server {

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8502;   // 0: a free one (HttpServer::port() says which)
  int threads = 4;   // event-loop threads, which also run the handlers
  int max_connections = 4096;
  size_t max_header_bytes = 16 << 10;
  size_t max_body_bytes = 64 << 20;
  // Request bodies all connections together may hold while they arrive and until their answers
  // are written (never less than max_body_bytes): past it a new body gets 503. Without it, every
  // connection could hold a body of max_body_bytes at once.
  size_t max_body_bytes_in_flight = size_t{1} << 30;
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(30);
  absl::Duration body_timeout = absl::Seconds(60);
  absl::Duration write_timeout = absl::Seconds(60);
  absl::Duration stream_keepalive = absl::Seconds(15);

  // TLS: PEM files as the gRPC port's flags name them (already checked by server_security);
  // empty cert: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  std::string tls_client_auth;  // none | request | require; empty: require with a CA file

  // Every complete request (head and body read and checked).
  HttpHandler handler;
  // Called with the head (body still empty) before the body is read; a response refuses the
  // request with it (the connection then closes unless the request had no body).
  std::function<std::optional<HttpResponse>(const HttpRequest& head)> check_head;
  // The body of a response the transport itself gives (400 framing, 408, 413, 431, 503): the
  // front shapes it as the path's protocol does. Null: plain text.
  std::function<HttpResponse(const std::string& path, int status, const std::string& message)> error_response;

  // Observers for the metrics; each may be null and is called from event-loop threads.
  std::function<void(int delta)> on_connections;       // +1 opened, -1 closed
  std::function<void()> on_connection_refused;         // over max_connections
  std::function<void(const char* reason)> on_rejected;  // header_timeout, body_timeout, framing, ...
};

class HttpServer {
 public:
  // Binds and starts serving; INVALID_ARGUMENT for bad options or TLS files OpenSSL refuses,
  // UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options);
  ~HttpServer();  // Stop(absl::ZeroDuration())

  int port() const;
  void Drain();
  void Stop(absl::Duration grace = absl::Seconds(2));

  // For tests and the fuzz target: one connection served in memory by the same session code.
  // `input` is what the client sends, in these pieces, each arriving once the server has done
  // all it could with the ones before; then the client waits for the answers and ends its side. Returns every byte the server wrote. Handlers and their posted work run on
  // this thread; no deadline fires (time does not pass).
  static std::string ServeBytesForTest(HttpServerOptions options, std::vector<std::string> input);

  struct Impl;

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace elliptical::server
