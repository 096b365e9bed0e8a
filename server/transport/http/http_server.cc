#include "server/transport/http/http_server.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/log.h"
#include "server/transport/http/connection.h"
#include "server/transport/http/session.h"

namespace elliptical::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using http_internal::ConfigureTls;
using http_internal::Conn;
using http_internal::HttpSession;
using http_internal::MakeSession;
using http_internal::MemoryConn;
using http_internal::PlainConn;
using http_internal::TlsConn;

struct HttpServer::Impl : http_internal::SessionOwner, std::enable_shared_from_this<HttpServer::Impl> {
  explicit Impl(HttpServerOptions o) : opts(std::move(o)), acceptor(io_context), retry(io_context) {}

  const HttpServerOptions& options() const override { return opts; }
  asio::io_context& io() override { return io_context; }
  void Unregister(HttpSession* session) override;
  bool ReserveBodyBytes(size_t bytes) override {
    const size_t budget = std::max(opts.max_body_bytes_in_flight, opts.max_body_bytes);
    size_t held = body_bytes.load();
    do {
      if (held + bytes > budget) return false;
    } while (!body_bytes.compare_exchange_weak(held, held + bytes));
    return true;
  }
  void ReleaseBodyBytes(size_t bytes) override { body_bytes.fetch_sub(bytes); }

  void Accept();
  void Register(const std::shared_ptr<HttpSession>& session);
  template <typename F>
  void ForEachSession(F f);

  const HttpServerOptions opts;
  asio::io_context io_context;
  std::optional<asio::ssl::context> tls;
  tcp::acceptor acceptor;
  asio::steady_timer retry;  // accept failed (out of descriptors): try again shortly
  std::vector<std::thread> threads;
  std::atomic<bool> draining{false};
  std::atomic<int> open{0};
  std::atomic<size_t> body_bytes{0};  // request bodies held by all sessions
  int port = 0;

  absl::Mutex mu;
  std::unordered_map<HttpSession*, std::weak_ptr<HttpSession>> sessions ABSL_GUARDED_BY(mu);
};

void HttpServer::Impl::Register(const std::shared_ptr<HttpSession>& session) {
  absl::MutexLock lock(&mu);
  sessions.emplace(session.get(), session);
}

void HttpServer::Impl::Unregister(HttpSession* session) {
  bool removed;
  {
    absl::MutexLock lock(&mu);
    removed = sessions.erase(session) > 0;
  }
  if (removed) {
    open.fetch_sub(1);
    if (opts.on_connections) opts.on_connections(-1);
  }
}

template <typename F>
void HttpServer::Impl::ForEachSession(F f) {
  std::vector<std::shared_ptr<HttpSession>> live;
  {
    absl::MutexLock lock(&mu);
    for (auto& [raw, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) asio::post(s->strand(), [s, f] { f(*s); });
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(io_context), [self = shared_from_this()](const error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
    if (ec) {
      // Out of descriptors, most likely: wait a little rather than spin on the error.
      LogWarning("HTTP accept failed: %s", ec.message());
      self->retry.expires_after(std::chrono::milliseconds(50));
      self->retry.async_wait([self](const error_code& e) {
        if (!e) self->Accept();
      });
      return;
    }
    error_code ignored;
    if (self->open.load() >= self->opts.max_connections) {
      // Refused at once: a status line where the client can read one, never a wait.
      if (!self->tls) {
        static constexpr char kFull[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        socket.non_blocking(true, ignored);
        socket.write_some(asio::buffer(kFull, sizeof(kFull) - 1), ignored);
      }
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      if (self->opts.on_connection_refused) self->opts.on_connection_refused();
    } else {
      socket.set_option(tcp::no_delay(true), ignored);
      std::unique_ptr<Conn> conn;
      if (self->tls) {
        conn = std::make_unique<TlsConn>(std::move(socket), *self->tls);
      } else {
        conn = std::make_unique<PlainConn>(std::move(socket));
      }
      std::shared_ptr<HttpSession> session = MakeSession(self, std::move(conn));
      self->open.fetch_add(1);
      if (self->opts.on_connections) self->opts.on_connections(+1);
      self->Register(session);
      const bool drain = self->draining.load();
      asio::dispatch(session->strand(), [session, drain] {
        if (drain) session->MarkDraining();
        session->Start();
      });
    }
    self->Accept();
  });
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options) {
  if (options.threads < 1 || options.threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_threads=", options.threads, ": expected 1 to 256 event-loop threads"));
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_max_connections=", options.max_connections, ": expected at least 1"));
  }
  for (const auto& [value, flag] : {std::pair{options.header_timeout, "--http_header_timeout_s"},
                                    std::pair{options.idle_timeout, "--http_idle_timeout_s"},
                                    std::pair{options.body_timeout, "--http_body_timeout_s"}}) {
    if (value <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " must be positive"));
    }
  }
  // Past a day a deadline means "never" in practice; the cap keeps the timers' arithmetic finite.
  for (absl::Duration* d : {&options.header_timeout, &options.idle_timeout, &options.body_timeout,
                            &options.write_timeout, &options.stream_keepalive}) {
    *d = std::min(*d, absl::Hours(24));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls_cert_file and --tls_key_file");
  }
  if (!options.handler) return absl::InvalidArgumentError("the HTTP server needs a handler");
  // A client that closes mid-answer must fail a write, not end the process (gRPC ignores
  // SIGPIPE too).
  signal(SIGPIPE, SIG_IGN);

  auto impl = std::make_shared<Impl>(std::move(options));
  if (!impl->opts.tls_cert_file.empty()) {
    impl->tls.emplace(asio::ssl::context::tls_server);
    if (absl::Status s = ConfigureTls(impl->opts, *impl->tls); !s.ok()) return s;
  }
  error_code ec;
  const auto address = asio::ip::make_address(impl->opts.host == "localhost" ? "127.0.0.1" : impl->opts.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("--http_host=", impl->opts.host, ": not an IP address"));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(impl->opts.port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", impl->opts.host, ":", impl->opts.port,
                                               " (--http_port): ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  for (int i = 0; i < impl->opts.threads; ++i) {
    impl->threads.emplace_back([raw = impl.get()] {
      auto guard = asio::make_work_guard(raw->io_context);
      raw->io_context.run();
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::Drain() {
  if (impl_->draining.exchange(true)) return;
  impl_->ForEachSession([](HttpSession& s) { s.Drain(); });
}

void HttpServer::Stop(absl::Duration grace) {
  if (impl_->threads.empty()) return;
  Drain();
  asio::post(impl_->io_context, [impl = impl_] {
    error_code ignored;
    impl->acceptor.close(ignored);
    impl->retry.cancel();
  });
  // Answers being written get `grace`; then every connection closes.
  const absl::Time until = absl::Now() + grace;
  while (impl_->open.load() > 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
  impl_->ForEachSession([](HttpSession& s) { s.Close(); });
  const absl::Time closed_by = absl::Now() + absl::Seconds(1);
  while (impl_->open.load() > 0 && absl::Now() < closed_by) absl::SleepFor(absl::Milliseconds(2));
  impl_->io_context.stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
  // The handlers still queued (cancelled reads, writes and timers) hold their sessions: run
  // them out so the sessions, and what their exchanges hold, are freed.
  impl_->io_context.restart();
  impl_->io_context.run_for(std::chrono::milliseconds(500));
}

HttpServer::~HttpServer() { Stop(absl::ZeroDuration()); }

std::string HttpServer::ServeBytesForTest(HttpServerOptions options, std::vector<std::string> input) {
  auto impl = std::make_shared<Impl>(std::move(options));
  std::string output;
  auto strand = asio::make_strand(impl->io_context);
  auto conn = std::make_unique<MemoryConn>(strand, std::move(input), &output);
  MemoryConn* raw = conn.get();
  std::shared_ptr<HttpSession> session = MakeSession(impl, std::move(conn));
  impl->open.fetch_add(1);
  impl->Register(session);
  asio::post(strand, [session] { session->Start(); });
  // Only what is ready runs (poll): no deadline can expire, time does not matter. Each piece
  // arrives once the server has done all it could with the ones before.
  auto settle = [&impl] {
    while (impl->io_context.poll() > 0) impl->io_context.restart();
    impl->io_context.restart();
  };
  settle();
  bool more = true;
  while (more) {
    asio::post(strand, [raw, &more] { more = raw->DeliverNext(); });
    settle();
  }
  asio::post(strand, [raw] { raw->EndInput(); });
  while (impl->io_context.poll() > 0) impl->io_context.restart();
  impl->io_context.restart();
  asio::post(strand, [session] { session->Close(); });
  session.reset();
  while (impl->io_context.poll() > 0) impl->io_context.restart();
  return output;
}

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(n, absl::string_view(name.data(), name.size()))) return std::string_view(v);
  }
  return std::nullopt;
}

std::string_view HttpRequest::Param(std::string_view name) const {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return {};
}

}  // namespace elliptical::server
