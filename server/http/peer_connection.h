// Whether the client of an HTTP request is still connected, asked while the request is being
// served. cpp-httplib learns that a client left only when a write to it fails, and a
// non-streaming completion writes nothing until its generations end; this lets its handler
// notice sooner and cancel them.
//
// The request's socket is found among the process's descriptors by its address pair (the
// local and remote address and port cpp-httplib records): the worker thread serving a request
// holds its socket open until the handler returns, so the match is that connection's for as
// long as the handler asks.
//
// Closed() is true once the peer has shut its side of the connection (or reset it). A client
// that half-closes after sending its request (shutdown(SHUT_WR)) and still reads the answer is
// taken as gone; HTTP clients in use (curl, httpx, requests, the openai SDK) do not do that.
#pragma once

#include <optional>

#include <httplib.h>

namespace elliptical::server {

class PeerConnection {
 public:
  // std::nullopt when the socket cannot be found (then nothing is known before the write).
  static std::optional<PeerConnection> Of(const httplib::Request& request);

  bool Closed() const;

 private:
  explicit PeerConnection(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace elliptical::server
