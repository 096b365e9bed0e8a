// The byte streams an HTTP session reads and writes: a plain socket, a TLS stream over one, or
// (for tests and the fuzz target) memory, behind one interface, so the session's logic is the
// same for all. Internal to the transport (http_server.cc, session.cc).
#pragma once

#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "absl/status/status.h"
#include "server/transport/http/http_server.h"

namespace elliptical::server::http_internal {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

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

// A client in memory (ServeBytesForTest): the input's pieces arrive one at a time, each when the
// driver delivers it (as the network would, while the server may have a read pending or not);
// reads take what has arrived, or wait; after EndInput a waiting read sees the end of the stream.
// Writes collect the output. Completions are posted, as a socket's would be.
class MemoryConn final : public Conn {
 public:
  MemoryConn(asio::any_io_executor executor, std::vector<std::string> input, std::string* output)
      : executor_(std::move(executor)), input_(std::move(input)), output_(output) {}
  asio::any_io_executor executor() override { return executor_; }
  void Handshake(std::function<void(const error_code&)> done) override { done(error_code()); }
  void ReadSome(asio::mutable_buffer buffer, ReadDone done) override {
    if (closed_) return Complete(std::move(done), asio::error::operation_aborted, 0);
    if (Available()) return Fill(buffer, std::move(done));
    if (ended_) return Complete(std::move(done), asio::error::eof, 0);
    waiting_ = std::move(done);
    waiting_buffer_ = buffer;
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
  // The next piece arrives; false when every piece has.
  bool DeliverNext() {
    if (arrived_ == input_.size()) return false;
    ++arrived_;
    if (waiting_ && Available()) Fill(waiting_buffer_, std::exchange(waiting_, nullptr));
    return true;
  }
  // The client has sent everything: a waiting read sees the end of the stream.
  void EndInput() {
    ended_ = true;
    if (waiting_ && !Available()) Complete(std::exchange(waiting_, nullptr), asio::error::eof, 0);
  }

 private:
  bool Available() {
    while (next_ < arrived_ && offset_ == input_[next_].size()) {
      ++next_;
      offset_ = 0;
    }
    return next_ < arrived_;
  }
  void Fill(asio::mutable_buffer buffer, ReadDone done) {
    const std::string& piece = input_[next_];
    const size_t n = std::min(buffer.size(), piece.size() - offset_);
    std::memcpy(buffer.data(), piece.data() + offset_, n);
    offset_ += n;
    Complete(std::move(done), error_code(), n);
  }
  void Complete(ReadDone done, error_code ec, size_t n) {
    asio::post(executor_, [done = std::move(done), ec, n] { done(ec, n); });
  }

  asio::any_io_executor executor_;
  std::vector<std::string> input_;
  std::string* output_;
  size_t arrived_ = 0;  // pieces delivered
  size_t next_ = 0;     // the piece being read
  size_t offset_ = 0;
  bool ended_ = false;
  bool closed_ = false;
  ReadDone waiting_;
  asio::mutable_buffer waiting_buffer_;
};

// Sets up `context` from the TLS flags: the gRPC port's certificate, key and client-certificate
// policy. INVALID_ARGUMENT naming the files when OpenSSL refuses them.
absl::Status ConfigureTls(const HttpServerOptions& options, asio::ssl::context& context);

}  // namespace elliptical::server::http_internal
