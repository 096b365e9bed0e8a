#include "server/transport/http/http_server.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/log.h"

namespace elliptical::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// Bytes asked of the socket per read: a request head fits one read; a body streams through
// the parser in pieces of this size.
constexpr size_t kReadChunk = 16 << 10;
// After a refusal that leaves a body unread, how long the unread bytes are drained before the
// socket closes: closing with unread data makes the kernel reset the connection, and a client
// still sending may then lose the answer it was given.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 4 << 20;

std::chrono::nanoseconds ToChrono(absl::Duration d) { return absl::ToChronoNanoseconds(d); }

std::string ReasonPhrase(int status) {
  if (status == 499) return "Client Closed Request";
  const beast::string_view reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return reason.empty() || reason == "<unknown-status>" ? std::string("Unknown") : std::string(reason);
}

// The status line and headers. `content_length` nullopt: the body follows in chunks (or, for an
// HTTP/1.0 client, until the connection closes).
std::string ResponseHead(const HttpResponse& r, bool keep_alive, bool http10, std::optional<size_t> content_length) {
  std::string head = absl::StrCat(http10 ? "HTTP/1.0 " : "HTTP/1.1 ", r.status, " ", ReasonPhrase(r.status), "\r\n");
  if (!r.content_type.empty()) absl::StrAppend(&head, "Content-Type: ", r.content_type, "\r\n");
  for (const auto& [name, value] : r.headers) absl::StrAppend(&head, name, ": ", value, "\r\n");
  if (content_length) {
    absl::StrAppend(&head, "Content-Length: ", *content_length, "\r\n");
  } else if (!http10) {
    absl::StrAppend(&head, "Transfer-Encoding: chunked\r\n");
  }
  if (!keep_alive) {
    absl::StrAppend(&head, "Connection: close\r\n");
  } else if (http10) {
    absl::StrAppend(&head, "Connection: keep-alive\r\n");
  }
  absl::StrAppend(&head, "\r\n");
  return head;
}

// A socket, plain or TLS (or, for tests, memory), behind one interface: the session's logic is
// the same for all.
class Conn {
 public:
  using ReadDone = std::function<void(const error_code&, size_t)>;
  virtual ~Conn() = default;
  virtual asio::any_io_executor executor() = 0;
  virtual void Handshake(std::function<void(const error_code&)> done) = 0;
  virtual void ReadSome(asio::mutable_buffer buffer, ReadDone done) = 0;
  virtual void Write(asio::const_buffer buffer, ReadDone done) = 0;
  virtual void Cancel() = 0;        // pending operations complete with operation_aborted
  virtual void ShutdownSend() = 0;  // FIN: the client reads to the end of what was sent
  virtual void Close() = 0;
};

class SocketConn : public Conn {
 public:
  explicit SocketConn(tcp::socket socket) : socket_(std::move(socket)) {}
  asio::any_io_executor executor() override { return socket_.get_executor(); }
  void Cancel() override {
    error_code ignored;
    socket_.cancel(ignored);
  }
  void ShutdownSend() override {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
  }
  void Close() override {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 protected:
  tcp::socket socket_;
};

class PlainConn final : public SocketConn {
 public:
  using SocketConn::SocketConn;
  void Handshake(std::function<void(const error_code&)> done) override { done(error_code()); }
  void ReadSome(asio::mutable_buffer buffer, ReadDone done) override { socket_.async_read_some(buffer, std::move(done)); }
  void Write(asio::const_buffer buffer, ReadDone done) override { asio::async_write(socket_, buffer, std::move(done)); }
};

class TlsConn final : public Conn {
 public:
  TlsConn(tcp::socket socket, asio::ssl::context& context) : stream_(std::move(socket), context) {}
  asio::any_io_executor executor() override { return stream_.next_layer().get_executor(); }
  void Handshake(std::function<void(const error_code&)> done) override {
    stream_.async_handshake(asio::ssl::stream_base::server, std::move(done));
  }
  void ReadSome(asio::mutable_buffer buffer, ReadDone done) override { stream_.async_read_some(buffer, std::move(done)); }
  void Write(asio::const_buffer buffer, ReadDone done) override { asio::async_write(stream_, buffer, std::move(done)); }
  void Cancel() override {
    error_code ignored;
    stream_.next_layer().cancel(ignored);
  }
  void ShutdownSend() override {
    error_code ignored;
    stream_.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
  }
  void Close() override {
    error_code ignored;
    stream_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.next_layer().close(ignored);
  }

 private:
  asio::ssl::stream<tcp::socket> stream_;
};

// A client in memory (ServeBytesForTest): reads give the input's pieces in turn, then wait
// until the driver ends the input; writes collect the output. Completions are posted, as a
// socket's would be.
class MemoryConn final : public Conn {
 public:
  MemoryConn(asio::any_io_executor executor, std::vector<std::string> input, std::string* output)
      : executor_(std::move(executor)), input_(std::move(input)), output_(output) {}
  asio::any_io_executor executor() override { return executor_; }
  void Handshake(std::function<void(const error_code&)> done) override { done(error_code()); }
  void ReadSome(asio::mutable_buffer buffer, ReadDone done) override {
    if (closed_) return Complete(std::move(done), asio::error::operation_aborted, 0);
    while (next_ < input_.size() && offset_ == input_[next_].size()) {
      ++next_;
      offset_ = 0;
    }
    if (next_ == input_.size()) {
      if (ended_) return Complete(std::move(done), asio::error::eof, 0);
      waiting_ = std::move(done);
      waiting_buffer_ = buffer;
      return;
    }
    const std::string& piece = input_[next_];
    const size_t n = std::min(buffer.size(), piece.size() - offset_);
    std::memcpy(buffer.data(), piece.data() + offset_, n);
    offset_ += n;
    Complete(std::move(done), error_code(), n);
  }
  void Write(asio::const_buffer buffer, ReadDone done) override {
    if (closed_) return Complete(std::move(done), asio::error::broken_pipe, 0);
    output_->append(static_cast<const char*>(buffer.data()), buffer.size());
    Complete(std::move(done), error_code(), buffer.size());
  }
  void Cancel() override {
    if (waiting_) Complete(std::exchange(waiting_, nullptr), asio::error::operation_aborted, 0);
  }
  void ShutdownSend() override {}
  void Close() override {
    closed_ = true;
    Cancel();
  }
  // The client has sent everything: a waiting read sees the end of the stream.
  void EndInput() {
    ended_ = true;
    if (waiting_) Complete(std::exchange(waiting_, nullptr), asio::error::eof, 0);
  }

 private:
  void Complete(ReadDone done, error_code ec, size_t n) {
    asio::post(executor_, [done = std::move(done), ec, n] { done(ec, n); });
  }

  asio::any_io_executor executor_;
  std::vector<std::string> input_;
  std::string* output_;
  size_t next_ = 0;
  size_t offset_ = 0;
  bool ended_ = false;
  bool closed_ = false;
  ReadDone waiting_;
  asio::mutable_buffer waiting_buffer_;
};

class Session;

// The HttpReply of one exchange: every call hops onto the session's strand.
class Reply final : public HttpReply {
 public:
  Reply(std::weak_ptr<Session> session, asio::any_io_executor strand, asio::io_context& io)
      : session_(std::move(session)), strand_(std::move(strand)), io_(io) {}

  void Send(HttpResponse response) override;
  void BeginStream(HttpResponse head) override;
  void Write(std::string data, std::function<void(bool)> on_written) override;
  void End() override;

  void OnClientGone(std::function<void()> on_gone) override {
    {
      absl::MutexLock lock(&mu_);
      if (!gone_) {
        if (!over_) on_gone_ = std::move(on_gone);
        return;
      }
    }
    Post(std::move(on_gone));
  }
  bool client_gone() const override {
    absl::MutexLock lock(&mu_);
    return gone_;
  }
  // On the connection's strand: what the work then writes goes out from the same thread, with
  // no second hop.
  void Post(std::function<void()> work) override { asio::post(strand_, std::move(work)); }
  void Hold(std::shared_ptr<void> object) override {
    absl::MutexLock lock(&mu_);
    if (!over_) holds_.push_back(std::move(object));
  }

  // The session's side, on its strand.
  // The answer will not be completed: the client left or the server dropped the connection.
  void Abandon() {
    std::function<void()> on_gone;
    {
      absl::MutexLock lock(&mu_);
      if (over_) return;
      gone_ = true;
      on_gone = std::move(on_gone_);
    }
    if (on_gone) on_gone();
    Release();
  }
  // The exchange is over (answered, or abandoned): what it held goes.
  void Release() {
    std::vector<std::shared_ptr<void>> holds;
    std::function<void()> on_gone;
    {
      absl::MutexLock lock(&mu_);
      over_ = true;
      holds.swap(holds_);
      on_gone = std::move(on_gone_);
    }
  }

 private:
  template <typename F>
  void OnStrand(F f);

  const std::weak_ptr<Session> session_;
  const asio::any_io_executor strand_;
  asio::io_context& io_;
  mutable absl::Mutex mu_;
  bool gone_ ABSL_GUARDED_BY(mu_) = false;
  bool over_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_gone_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<void>> holds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  explicit Impl(HttpServerOptions o) : options(std::move(o)), acceptor(io), retry(io) {}

  void Accept();
  void Register(const std::shared_ptr<Session>& session);
  void Unregister(Session* session);
  template <typename F>
  void ForEachSession(F f);

  const HttpServerOptions options;
  asio::io_context io;
  std::optional<asio::ssl::context> tls;
  tcp::acceptor acceptor;
  asio::steady_timer retry;  // accept failed (out of descriptors): try again shortly
  std::vector<std::thread> threads;
  std::atomic<bool> draining{false};
  std::atomic<int> open{0};
  int port = 0;

  absl::Mutex mu;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions ABSL_GUARDED_BY(mu);
};

namespace {

// One connection. Everything below runs on its strand (the socket's executor).
class Session final : public std::enable_shared_from_this<Session> {
 public:
  enum class State { kHandshake, kIdle, kHead, kBody, kBusy, kLinger, kClosed };

  Session(std::shared_ptr<HttpServer::Impl> server, std::unique_ptr<Conn> conn)
      : server_(std::move(server)),
        o_(server_->options),
        conn_(std::move(conn)),
        strand_(conn_->executor()),
        deadline_(strand_),
        write_deadline_(strand_),
        keepalive_(strand_) {}

  asio::any_io_executor strand() const { return strand_; }

  void Start() {
    state_ = State::kHandshake;
    SetDeadline(o_.header_timeout, "handshake_timeout");
    auto self = shared_from_this();
    conn_->Handshake([self](const error_code& ec) {
      if (ec) return self->Close();
      self->BeginIdle();
    });
  }

  // Drain: nothing in progress closes now; a request in progress is answered, then closes.
  void Drain() {
    draining_ = true;
    if (state_ == State::kIdle || state_ == State::kHead || state_ == State::kBody || state_ == State::kHandshake) {
      Close();
    }
  }
  void Close();
  // A connection accepted while draining may still send its one request (its call is refused
  // by the core, 503, rather than the connection dropped unanswered); it is never kept alive.
  void MarkDraining() { draining_ = true; }

  // Reply's calls, on the strand. Each ignores a reply that is not the current exchange's.
  void SendWhole(Reply* reply, HttpResponse response);
  void SendHead(Reply* reply, HttpResponse head);
  void SendChunk(Reply* reply, std::string data, std::function<void(bool)> on_written);
  void SendEnd(Reply* reply);

 private:
  struct Piece {
    std::string data;
    std::function<void(bool)> done;
    bool last = false;  // the exchange's answer is complete once this is written
  };

  // A read phase's deadline; on expiry the pending read is cancelled and its handler sees why.
  void SetDeadline(absl::Duration after, const char* reason) {
    const uint64_t generation = ++deadline_generation_;
    deadline_reason_ = nullptr;
    deadline_.expires_after(ToChrono(after));
    deadline_.async_wait([self = shared_from_this(), generation, reason](const error_code& ec) {
      if (ec || generation != self->deadline_generation_ || self->state_ == State::kClosed) return;
      self->deadline_reason_ = reason;
      self->conn_->Cancel();
    });
  }
  void ClearDeadline() {
    ++deadline_generation_;
    deadline_.cancel();
  }

  void BeginIdle() {
    state_ = State::kIdle;
    parser_.reset();
    if (buffer_.size() > 0) return BeginHead();
    if (draining_ && answers_ > 0) return Close();
    SetDeadline(o_.idle_timeout, "idle_timeout");
    StartRead();
  }

  void BeginHead() {
    state_ = State::kHead;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(o_.max_header_bytes));
    parser_->body_limit(o_.max_body_bytes);
    parser_->eager(false);  // stop after the head: it is checked before any body is taken
    head_checked_ = false;
    SetDeadline(o_.header_timeout, "header_timeout");
    Parse();
  }

  void StartRead() {
    if (reading_ || state_ == State::kClosed) return;
    reading_ = true;
    conn_->ReadSome(buffer_.prepare(kReadChunk), [self = shared_from_this()](const error_code& ec, size_t n) {
      self->reading_ = false;
      self->OnRead(ec, n);
    });
  }

  void OnRead(const error_code& ec, size_t n) {
    if (state_ == State::kClosed) return;
    if (state_ == State::kLinger) {
      lingered_ += n;
      if (ec || lingered_ > kLingerBytes) return Close();
      buffer_.consume(buffer_.size());
      return StartRead();
    }
    if (ec) {
      if (state_ == State::kBusy) return ClientLeft();
      const char* reason = deadline_reason_;
      if (reason != nullptr && (state_ == State::kHead || state_ == State::kBody)) {
        if (o_.on_rejected) o_.on_rejected(reason);
        return Refuse(408, reason,
                      state_ == State::kHead
                          ? absl::StrCat("the request head did not arrive within ", absl::FormatDuration(o_.header_timeout),
                                         " (--http_header_timeout_s)")
                          : absl::StrCat("the request body did not arrive within ", absl::FormatDuration(o_.body_timeout),
                                         " (--http_body_timeout_s)"),
                      /*count=*/false);
      }
      return Close();  // the client closed, reset, or stayed idle past its timeout
    }
    buffer_.commit(n);
    if (state_ == State::kBusy) {
      // Read ahead while the handler works: pipelined requests wait here, in order; past the
      // head limit the reading stops (the client gets its answers first).
      if (buffer_.size() < o_.max_header_bytes) StartRead();
      return;
    }
    if (state_ == State::kIdle) return BeginHead();
    Parse();
  }

  // Feeds buffered bytes to the parser; reads more, checks the head, or dispatches.
  void Parse() {
    error_code ec;
    while (buffer_.size() > 0 && !parser_->is_done()) {
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == bhttp::error::need_more) {
        ec = {};
        break;
      }
      if (ec) break;
      if (parser_->is_header_done() && !head_checked_) {
        head_checked_ = true;
        if (!CheckHead()) return;
      }
      if (used == 0) break;
    }
    if (ec) return ParseFailed(ec);
    if (parser_->is_header_done() && !head_checked_) {
      head_checked_ = true;
      if (!CheckHead()) return;
    }
    if (parser_->is_done()) return Dispatch();
    StartRead();
  }

  void ParseFailed(const error_code& ec) {
    if (ec == bhttp::error::header_limit) {
      return Refuse(431, "header_too_large",
                    absl::StrCat("the request head is larger than ", o_.max_header_bytes, " bytes"));
    }
    if (ec == bhttp::error::body_limit) {
      return Refuse(413, "body_too_large",
                    absl::StrCat("the request body is larger than the server's limit of ", o_.max_body_bytes,
                                 " bytes (--max_http_body_bytes)"));
    }
    if (ec == bhttp::error::bad_content_length || ec == bhttp::error::bad_transfer_encoding) {
      return Refuse(400, "framing",
                    "the request's framing is ambiguous: Content-Length with Transfer-Encoding, or differing "
                    "Content-Length values (RFC 9112 section 6.3)");
    }
    Refuse(400, "framing", absl::StrCat("the request is malformed: ", ec.message()));
  }

  // The head is complete: framing and limits, the route's own check, then the body.
  bool CheckHead() {
    const auto& message = parser_->get();
    request_ = HttpRequest();
    request_.method = std::string(message.method_string());
    const beast::string_view target = message.target();
    const size_t q = target.find('?');
    request_.path = std::string(target.substr(0, q));
    if (q != beast::string_view::npos) request_.query = std::string(target.substr(q + 1));
    for (const auto& field : message) {
      request_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    http10_ = message.version() < 11;
    if (message.find(bhttp::field::transfer_encoding) != message.end() && !parser_->chunked()) {
      Refuse(400, "framing", "Transfer-Encoding must end in \"chunked\" (RFC 9112 section 6.1)");
      return false;
    }
    const auto length = parser_->content_length();
    if (length && *length > o_.max_body_bytes) {
      Refuse(413, "body_too_large",
             absl::StrCat("the request body (", *length, " bytes) is larger than the server's limit of ",
                          o_.max_body_bytes, " bytes (--max_http_body_bytes)"));
      return false;
    }
    const bool has_body = parser_->chunked() || (length && *length > 0);
    if (o_.check_head) {
      if (std::optional<HttpResponse> refusal = o_.check_head(request_)) {
        Respond(*std::move(refusal), /*close=*/has_body);
        return false;
      }
    }
    if (has_body) {
      SetDeadline(o_.body_timeout, "body_timeout");
      state_ = State::kBody;
      if (auto expect = message.find(bhttp::field::expect);
          expect != message.end() && beast::iequals(expect->value(), "100-continue")) {
        Queue(Piece{"HTTP/1.1 100 Continue\r\n\r\n", nullptr});
      }
    }
    parser_->eager(true);
    return true;
  }

  void Dispatch() {
    ClearDeadline();
    state_ = State::kBusy;
    keep_alive_ = parser_->keep_alive();
    request_.body = parser_->release().body();
    parser_.reset();
    reply_ = std::make_shared<Reply>(weak_from_this(), strand_, server_->io);
    answered_ = false;
    // Watch the socket while the handler works: a client that leaves is seen now.
    if (buffer_.size() < o_.max_header_bytes) StartRead();
    std::shared_ptr<Reply> reply = reply_;
    try {
      o_.handler(request_, reply);
    } catch (const std::exception& e) {
      LogError("HTTP %s %s: %s", request_.method, request_.path, e.what());
      if (reply_ == reply && !answered_) SendWhole(reply.get(), ErrorResponse(500, "internal error"));
    }
  }

  HttpResponse ErrorResponse(int status, const std::string& message) const {
    if (o_.error_response) return o_.error_response(request_.path, status, message);
    HttpResponse r;
    r.status = status;
    r.content_type = "text/plain";
    r.body = message;
    return r;
  }

  // The transport's own refusals: answered, then the connection closes (its remaining bytes
  // cannot be trusted to start a request).
  void Refuse(int status, const char* reason, const std::string& message, bool count = true) {
    if (count && o_.on_rejected) o_.on_rejected(reason);
    ClearDeadline();
    Respond(ErrorResponse(status, message), /*close=*/true);
  }

  // A response outside a handler's exchange (refusals): written, then close or carry on.
  void Respond(HttpResponse r, bool close) {
    state_ = State::kBusy;
    keep_alive_ = !close && parser_ && parser_->keep_alive();
    closing_after_ = close;
    std::string data = ResponseHead(r, keep_alive_ && !draining_, http10_, r.body.size());
    data += r.body;
    Queue(Piece{std::move(data), nullptr, /*last=*/true});
  }

  void Queue(Piece piece) {
    out_.push_back(std::move(piece));
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    if (writing_ || out_.empty() || state_ == State::kClosed) return;
    writing_ = true;
    const uint64_t generation = ++write_generation_;
    write_deadline_.expires_after(ToChrono(o_.write_timeout));
    write_deadline_.async_wait([self = shared_from_this(), generation](const error_code& ec) {
      if (ec || generation != self->write_generation_) return;
      self->Close();  // the client does not read what it asked for
    });
    conn_->Write(asio::buffer(out_.front().data), [self = shared_from_this()](const error_code& ec, size_t) {
      self->writing_ = false;
      ++self->write_generation_;
      self->write_deadline_.cancel();
      Piece piece = std::move(self->out_.front());
      self->out_.pop_front();
      if (self->state_ == State::kClosed) {
        if (piece.done) piece.done(false);
        return;
      }
      if (ec) {
        if (piece.done) piece.done(false);
        return self->ClientLeft();
      }
      self->last_write_ = std::chrono::steady_clock::now();
      // `done` may queue the next piece itself (a stream's writer does): WriteNext then has
      // already started it.
      if (piece.done) piece.done(true);
      if (piece.last) return self->AnswerWritten();
      self->WriteNext();
    });
  }

  // The current answer is on the wire: next request, or close.
  void AnswerWritten() {
    ++answers_;
    keepalive_.cancel();
    if (reply_) {
      reply_->Release();
      reply_.reset();
    }
    if (!keep_alive_ || draining_ || closing_after_) {
      return closing_after_ && parser_ && !parser_->is_done() ? Linger() : Close();
    }
    BeginIdle();
  }

  // Stops sending and discards what the client still sends, for a short while, before closing.
  void Linger() {
    state_ = State::kLinger;
    conn_->ShutdownSend();
    deadline_.expires_after(kLingerTime);
    deadline_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->Close();
    });
    buffer_.consume(buffer_.size());
    StartRead();
  }

  void ClientLeft() {
    if (reply_) reply_->Abandon();
    Close();
  }

  void ScheduleKeepalive() {
    keepalive_.expires_after(ToChrono(o_.stream_keepalive));
    keepalive_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->state_ != State::kBusy || !self->streaming_) return;
      if (!self->writing_ && std::chrono::steady_clock::now() - self->last_write_ >= ToChrono(self->o_.stream_keepalive)) {
        static constexpr char kComment[] = ": keep-alive\n\n";
        self->Queue(Piece{self->Chunk(kComment), nullptr});
      }
      self->ScheduleKeepalive();
    });
  }

  std::string Chunk(std::string_view data) const {
    if (http10_) return std::string(data);
    return absl::StrCat(absl::Hex(data.size()), "\r\n", absl::string_view(data.data(), data.size()), "\r\n");
  }

  const std::shared_ptr<HttpServer::Impl> server_;
  const HttpServerOptions& o_;
  std::unique_ptr<Conn> conn_;
  asio::any_io_executor strand_;
  asio::steady_timer deadline_;
  asio::steady_timer write_deadline_;
  asio::steady_timer keepalive_;
  uint64_t deadline_generation_ = 0;
  uint64_t write_generation_ = 0;
  const char* deadline_reason_ = nullptr;

  State state_ = State::kHandshake;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool head_checked_ = false;
  HttpRequest request_;
  bool http10_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool keep_alive_ = false;
  bool closing_after_ = false;
  bool draining_ = false;
  bool streaming_ = false;
  bool answered_ = false;
  size_t lingered_ = 0;
  int64_t answers_ = 0;  // answers written on this connection
  std::chrono::steady_clock::time_point last_write_;
  std::deque<Piece> out_;
  std::shared_ptr<Reply> reply_;
};

void Session::Close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  deadline_.cancel();
  write_deadline_.cancel();
  keepalive_.cancel();
  if (reply_) {
    reply_->Abandon();
    reply_.reset();
  }
  // The piece being written stays until its write completes (the socket still points at it).
  std::deque<Piece> pending;
  while (out_.size() > (writing_ ? 1u : 0u)) {
    pending.push_back(std::move(out_.back()));
    out_.pop_back();
  }
  for (Piece& p : pending) {
    if (p.done) p.done(false);
  }
  conn_->Close();
  server_->Unregister(this);
}

void Session::SendWhole(Reply* reply, HttpResponse response) {
  if (reply_.get() != reply || answered_ || state_ != State::kBusy) return;
  answered_ = true;
  const bool keep = keep_alive_ && !draining_;
  std::string data = ResponseHead(response, keep, http10_, response.body.size());
  data += response.body;
  keep_alive_ = keep;
  Queue(Piece{std::move(data), nullptr, /*last=*/true});
}

void Session::SendHead(Reply* reply, HttpResponse head) {
  if (reply_.get() != reply || answered_ || state_ != State::kBusy) return;
  answered_ = true;
  streaming_ = true;
  // An HTTP/1.0 client has no chunked coding: its stream ends when the connection closes.
  keep_alive_ = keep_alive_ && !draining_ && !http10_;
  Queue(Piece{ResponseHead(head, keep_alive_, http10_, std::nullopt), nullptr});
  last_write_ = std::chrono::steady_clock::now();
  ScheduleKeepalive();
}

void Session::SendChunk(Reply* reply, std::string data, std::function<void(bool)> on_written) {
  if (reply_.get() != reply || !streaming_ || state_ != State::kBusy) {
    if (on_written) on_written(false);
    return;
  }
  if (data.empty()) {  // an empty chunk would end the stream
    if (on_written) on_written(true);
    return;
  }
  Queue(Piece{Chunk(data), std::move(on_written)});
}

void Session::SendEnd(Reply* reply) {
  if (reply_.get() != reply || !streaming_ || state_ != State::kBusy) return;
  streaming_ = false;
  Queue(Piece{http10_ ? std::string() : std::string("0\r\n\r\n"), nullptr, /*last=*/true});
}

template <typename F>
void Reply::OnStrand(F f) {
  std::shared_ptr<Session> session = session_.lock();
  if (!session) return;
  asio::dispatch(strand_, [session, self = this, f = std::move(f)]() mutable { f(*session, self); });
}

void Reply::Send(HttpResponse response) {
  OnStrand([r = std::move(response)](Session& s, Reply* self) mutable { s.SendWhole(self, std::move(r)); });
}
void Reply::BeginStream(HttpResponse head) {
  OnStrand([r = std::move(head)](Session& s, Reply* self) mutable { s.SendHead(self, std::move(r)); });
}
void Reply::Write(std::string data, std::function<void(bool)> on_written) {
  std::shared_ptr<Session> session = session_.lock();
  if (!session) {
    if (on_written) Post([on_written] { on_written(false); });
    return;
  }
  asio::dispatch(strand_, [session, self = this, d = std::move(data), w = std::move(on_written)]() mutable {
    session->SendChunk(self, std::move(d), std::move(w));
  });
}
void Reply::End() {
  OnStrand([](Session& s, Reply* self) { s.SendEnd(self); });
}

}  // namespace

void HttpServer::Impl::Register(const std::shared_ptr<Session>& session) {
  absl::MutexLock lock(&mu);
  sessions.emplace(session.get(), session);
}

void HttpServer::Impl::Unregister(Session* session) {
  bool removed;
  {
    absl::MutexLock lock(&mu);
    removed = sessions.erase(session) > 0;
  }
  if (removed) {
    open.fetch_sub(1);
    if (options.on_connections) options.on_connections(-1);
  }
}

template <typename F>
void HttpServer::Impl::ForEachSession(F f) {
  std::vector<std::shared_ptr<Session>> live;
  {
    absl::MutexLock lock(&mu);
    for (auto& [raw, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) asio::post(s->strand(), [s, f] { f(*s); });
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](const error_code& ec, tcp::socket socket) {
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
    if (self->open.load() >= self->options.max_connections) {
      // Refused at once: a status line where the client can read one, never a wait.
      if (!self->tls) {
        static constexpr char kFull[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        socket.non_blocking(true, ignored);
        socket.write_some(asio::buffer(kFull, sizeof(kFull) - 1), ignored);
      }
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      if (self->options.on_connection_refused) self->options.on_connection_refused();
    } else {
      socket.set_option(tcp::no_delay(true), ignored);
      std::unique_ptr<Conn> conn;
      if (self->tls) {
        conn = std::make_unique<TlsConn>(std::move(socket), *self->tls);
      } else {
        conn = std::make_unique<PlainConn>(std::move(socket));
      }
      auto session = std::make_shared<Session>(self, std::move(conn));
      self->open.fetch_add(1);
      if (self->options.on_connections) self->options.on_connections(+1);
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

namespace {

// The TLS context: the gRPC port's certificate, key and client-certificate policy
// (server_security.cc checked the files and the mode).
absl::Status SetUpTls(const HttpServerOptions& o, asio::ssl::context& context) {
  SSL_CTX* ctx = context.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  const auto refused = [&o] {
    return absl::InvalidArgumentError(absl::StrCat("the HTTP port cannot use --tls_cert_file=", o.tls_cert_file,
                                                   " and --tls_key_file=", o.tls_key_file,
                                                   " (or --tls_client_ca_file): OpenSSL refused them"));
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, o.tls_cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, o.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return refused();
  }
  std::string mode = o.tls_client_auth;
  if (mode.empty()) mode = o.tls_client_ca_file.empty() ? "none" : "require";
  if (mode == "none") {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return absl::OkStatus();
  }
  if (o.tls_client_ca_file.empty() || SSL_CTX_load_verify_locations(ctx, o.tls_client_ca_file.c_str(), nullptr) != 1) {
    return refused();
  }
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.tls_client_ca_file.c_str())) {
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  SSL_CTX_set_verify(ctx, mode == "require" ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
                     nullptr);
  return absl::OkStatus();
}

}  // namespace

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
  if (!impl->options.tls_cert_file.empty()) {
    impl->tls.emplace(asio::ssl::context::tls_server);
    if (absl::Status s = SetUpTls(impl->options, *impl->tls); !s.ok()) return s;
  }
  error_code ec;
  const auto address = asio::ip::make_address(impl->options.host == "localhost" ? "127.0.0.1" : impl->options.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("--http_host=", impl->options.host, ": not an IP address"));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(impl->options.port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", impl->options.host, ":", impl->options.port,
                                               " (--http_port): ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  for (int i = 0; i < impl->options.threads; ++i) {
    impl->threads.emplace_back([raw = impl.get()] {
      auto guard = asio::make_work_guard(raw->io);
      raw->io.run();
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::Drain() {
  if (impl_->draining.exchange(true)) return;
  impl_->ForEachSession([](Session& s) { s.Drain(); });
}

void HttpServer::Stop(absl::Duration grace) {
  if (impl_->threads.empty()) return;
  Drain();
  asio::post(impl_->io, [impl = impl_] {
    error_code ignored;
    impl->acceptor.close(ignored);
    impl->retry.cancel();
  });
  // Answers being written get `grace`; then every connection closes.
  const absl::Time until = absl::Now() + grace;
  while (impl_->open.load() > 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
  impl_->ForEachSession([](Session& s) { s.Close(); });
  const absl::Time closed_by = absl::Now() + absl::Seconds(1);
  while (impl_->open.load() > 0 && absl::Now() < closed_by) absl::SleepFor(absl::Milliseconds(2));
  impl_->io.stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
  // The handlers still queued (cancelled reads, writes and timers) hold their sessions: run
  // them out so the sessions, and what their exchanges hold, are freed.
  impl_->io.restart();
  impl_->io.run_for(std::chrono::milliseconds(500));
}

HttpServer::~HttpServer() { Stop(absl::ZeroDuration()); }

std::string HttpServer::ServeBytesForTest(HttpServerOptions options, std::vector<std::string> input) {
  auto impl = std::make_shared<Impl>(std::move(options));
  std::string output;
  auto strand = asio::make_strand(impl->io);
  auto conn = std::make_unique<MemoryConn>(strand, std::move(input), &output);
  MemoryConn* raw = conn.get();
  auto session = std::make_shared<Session>(impl, std::move(conn));
  impl->open.fetch_add(1);
  impl->Register(session);
  asio::post(strand, [session] { session->Start(); });
  // Only what is ready runs (poll): no deadline can expire, time does not matter.
  while (impl->io.poll() > 0) impl->io.restart();
  impl->io.restart();
  asio::post(strand, [raw] { raw->EndInput(); });
  while (impl->io.poll() > 0) impl->io.restart();
  impl->io.restart();
  asio::post(strand, [session] { session->Close(); });
  session.reset();
  while (impl->io.poll() > 0) impl->io.restart();
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
