// One HTTP/1.1 connection: its request heads and bodies read under deadlines and limits, framing
// checked, each complete request handed to the handler with an HttpReply, and the answers written
// in order (http_server.h describes the whole life of a connection). Everything a session does
// runs on its strand. Internal to the transport.
#pragma once

#include <memory>

#include <boost/asio.hpp>

#include "server/transport/http/connection.h"
#include "server/transport/http/http_server.h"

namespace elliptical::server::http_internal {

class HttpSession;

// What a session needs of the server that owns it; the session keeps it alive.
class SessionOwner {
 public:
  virtual ~SessionOwner() = default;
  virtual const HttpServerOptions& options() const = 0;
  virtual asio::io_context& io() = 0;
  // The session has closed (called once, on its strand).
  virtual void Unregister(HttpSession* session) = 0;
  // The server-wide budget of request bodies in flight (options().max_body_bytes_in_flight):
  // false, and nothing taken, when `bytes` more would pass it.
  virtual bool ReserveBodyBytes(size_t bytes) = 0;
  virtual void ReleaseBodyBytes(size_t bytes) = 0;
};

class HttpSession {
 public:
  virtual ~HttpSession() = default;
  virtual asio::any_io_executor strand() const = 0;
  // The rest on the strand.
  virtual void Start() = 0;
  // Nothing in progress closes now; a request in progress is answered, then the connection closes.
  virtual void Drain() = 0;
  // A connection accepted while draining may still send its one request (its call is refused
  // by the core, 503, rather than the connection dropped unanswered); it is never kept alive.
  virtual void MarkDraining() = 0;
  virtual void Close() = 0;
};

std::shared_ptr<HttpSession> MakeSession(std::shared_ptr<SessionOwner> owner, std::unique_ptr<Conn> conn);

}  // namespace elliptical::server::http_internal
