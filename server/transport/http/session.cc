#include "server/transport/http/session.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/log.h"

namespace elliptical::server::http_internal {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

// Bytes asked of the socket per read: a request head fits one read; a body streams through
// the parser in pieces of this size.
constexpr size_t kReadChunk = 16 << 10;
// After a refusal that leaves a body unread, how long the unread bytes are drained before the
// socket closes: closing with unread data makes the kernel reset the connection, and a client
// still sending may then lose the answer it was given.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 4 << 20;
// While the server drains, a connection it accepts has this long for its request's head (a
// client that connects to send a request sends it at once); then it is closed like any idle
// or slow connection at the drain.
constexpr absl::Duration kDrainHeadTime = absl::Milliseconds(500);

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

// One connection. Everything below runs on its strand (the socket's executor).
class Session final : public HttpSession, public std::enable_shared_from_this<Session> {
 public:
  enum class State { kHandshake, kIdle, kHead, kBody, kBusy, kLinger, kClosed };

  Session(std::shared_ptr<SessionOwner> owner, std::unique_ptr<Conn> conn)
      : owner_(std::move(owner)),
        o_(owner_->options()),
        conn_(std::move(conn)),
        strand_(conn_->executor()),
        deadline_(strand_),
        write_deadline_(strand_),
        keepalive_(strand_) {}

  asio::any_io_executor strand() const override { return strand_; }

  void Start() override {
    state_ = State::kHandshake;
    SetDeadline(o_.header_timeout, "handshake_timeout");
    auto self = shared_from_this();
    conn_->Handshake([self](const error_code& ec) {
      if (ec) return self->Close();
      self->BeginIdle();
    });
  }

  // Drain: nothing in progress closes now; a request in progress is answered, then closes.
  void Drain() override {
    draining_ = true;
    // A lingering connection has had its answer: only its client's unread bytes are left.
    if (state_ == State::kIdle || state_ == State::kHead || state_ == State::kBody || state_ == State::kHandshake ||
        state_ == State::kLinger) {
      Close();
    }
  }
  void Close() override;
  void MarkDraining() override { draining_ = true; }

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
    SetDeadline(draining_ ? std::min(kDrainHeadTime, o_.idle_timeout) : o_.idle_timeout, "idle_timeout");
    StartRead();
  }

  void BeginHead() {
    state_ = State::kHead;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(o_.max_header_bytes));
    parser_->body_limit(o_.max_body_bytes);
    parser_->eager(false);  // stop after the head: it is checked before any body is taken
    head_checked_ = false;
    SetDeadline(draining_ ? std::min(kDrainHeadTime, o_.header_timeout) : o_.header_timeout, "header_timeout");
    Parse();
  }

  void StartRead() {
    if (reading_ || state_ == State::kClosed) return;
    reading_ = true;
    // Into a buffer of its own, never into buffer_: the parser consumes buffer_ while a read is
    // pending (a read ahead during a handler), and consuming it can move the region a read was
    // given. The bytes are appended to buffer_ when the read completes.
    conn_->ReadSome(asio::buffer(read_buf_.get(), kReadChunk), [self = shared_from_this()](const error_code& ec, size_t n) {
      self->reading_ = false;
      self->OnRead(ec, n);
    });
  }

  void OnRead(const error_code& ec, size_t n) {
    if (state_ == State::kClosed) return;
    if (state_ == State::kLinger) {
      lingered_ += n;
      if (ec || lingered_ > kLingerBytes) return Close();
      return StartRead();  // what arrives is dropped
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
    std::memcpy(buffer_.prepare(n).data(), read_buf_.get(), n);
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
      // A chunked body takes from the budget as it grows (a declared one took its length).
      if (head_checked_ && !ReserveBody(parser_->get().body().size())) return RefuseOverBudget();
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
    if (length && !ReserveBody(*length)) {
      RefuseOverBudget();
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
    reply_ = std::make_shared<Reply>(weak_from_this(), strand_, owner_->io());
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

  // Takes the body's size so far from the server's budget (only what it grew by since last).
  bool ReserveBody(size_t bytes) {
    if (bytes <= body_reserved_) return true;
    if (!owner_->ReserveBodyBytes(bytes - body_reserved_)) return false;
    body_reserved_ = bytes;
    return true;
  }
  void ReleaseBody() {
    owner_->ReleaseBodyBytes(body_reserved_);
    body_reserved_ = 0;
  }
  void RefuseOverBudget() {
    Refuse(503, "body_budget",
           absl::StrCat("the server is receiving ", o_.max_body_bytes_in_flight,
                        " bytes of request bodies already; retry later"));
  }

  // The current answer is on the wire: next request, or close.
  void AnswerWritten() {
    ++answers_;
    ReleaseBody();
    keepalive_.cancel();
    if (reply_) {
      reply_->Release();
      reply_.reset();
    }
    if (!keep_alive_ || draining_ || closing_after_) {
      // A refusal that left a body unread lingers so its client reads it; not while draining,
      // which closes what it can at once.
      return closing_after_ && !draining_ && parser_ && !parser_->is_done() ? Linger() : Close();
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

  const std::shared_ptr<SessionOwner> owner_;
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
  beast::flat_buffer buffer_;  // bytes read and not yet parsed
  const std::unique_ptr<char[]> read_buf_ = std::make_unique<char[]>(kReadChunk);  // a read in flight
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
  size_t body_reserved_ = 0;  // of the server's body budget, held until the answer is written
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
  ReleaseBody();
  owner_->Unregister(this);
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

std::shared_ptr<HttpSession> MakeSession(std::shared_ptr<SessionOwner> owner, std::unique_ptr<Conn> conn) {
  return std::make_shared<Session>(std::move(owner), std::move(conn));
}

}  // namespace elliptical::server::http_internal
