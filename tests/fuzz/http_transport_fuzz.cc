// Raw bytes from a client through the HTTP transport's session code (server/transport/http/http_server.h)
// on one connection in memory (HttpServer::ServeBytesForTest): request-line and header parsing,
// the framing refusals (Content-Length / Transfer-Encoding), chunked decoding under the body
// limit, Expect: 100-continue, pipelining, the head check, and answers whole, streamed and from
// posted work. No socket, no model.
//
// Byte 0 is a control byte; the rest is what the client sends.
//   bits 0-2  the size of the pieces the bytes arrive in: 1 << bits (1 to 128 bytes)
//   bit 3     a head check that refuses requests without an Authorization header
// Beyond "no crash, no sanitizer report": what the server wrote is a sequence of whole HTTP/1.x
// responses (status line, headers, a body of exactly the announced length or chunks ending in
// the last chunk), no more of them than requests could start in the input (each needs at least
// "A / HTTP/1.1\r\n\r\n"-like bytes, and every refusal closes the connection), and every answer
// to a request a route saw echoes a body no larger than the limit.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/transport/http/http_server.h"

namespace {

using elliptical::server::HttpReply;
using elliptical::server::HttpRequest;
using elliptical::server::HttpResponse;
using elliptical::server::HttpServer;
using elliptical::server::HttpServerOptions;

constexpr size_t kMaxBody = 512;

[[noreturn]] void Fail(const std::string& what, const std::string& output) {
  std::fprintf(stderr, "http_transport_fuzz: %s\n--- output ---\n%s\n", what.c_str(), output.substr(0, 2000).c_str());
  std::abort();
}

HttpServerOptions Options(bool check_auth) {
  HttpServerOptions o;
  o.max_body_bytes = kMaxBody;
  o.max_header_bytes = 2048;
  o.handler = [](HttpRequest& request, const std::shared_ptr<HttpReply>& reply) {
    if (request.body.size() > kMaxBody) std::abort();  // the limit let a larger body through
    if (absl::StartsWith(request.path, "/s")) {
      reply->BeginStream(HttpResponse{200, "text/event-stream", {}, ""});
      reply->Write(request.body, [reply](bool ok) {
        if (ok) reply->Write("data: [DONE]\n\n", [reply](bool) { reply->End(); });
      });
    } else if (absl::StartsWith(request.path, "/p")) {
      reply->Post([reply, n = request.body.size()] { reply->Send(HttpResponse{202, "text/plain", {}, std::to_string(n)}); });
    } else {
      reply->Send(HttpResponse{200, "text/plain", {}, std::to_string(request.body.size())});
    }
  };
  if (check_auth) {
    o.check_head = [](const HttpRequest& head) -> std::optional<HttpResponse> {
      if (head.Header("authorization")) return std::nullopt;
      return HttpResponse{401, "text/plain", {}, "token"};
    };
  }
  return o;
}

// Checks `out` is whole responses; returns how many.
size_t CheckResponses(const std::string& output) {
  std::string out = output;
  size_t count = 0;
  while (!out.empty()) {
    const size_t end = out.find("\r\n\r\n");
    if (end == std::string::npos) Fail("a response head without its end", output);
    const std::string head = out.substr(0, end);
    out.erase(0, end + 4);
    int status = 0;
    if (!(absl::StartsWith(head, "HTTP/1.1 ") || absl::StartsWith(head, "HTTP/1.0 ")) ||
        !absl::SimpleAtoi(head.substr(9, 3), &status) || status < 100 || status > 599) {
      Fail("a malformed status line", output);
    }
    if (status == 100) continue;
    size_t length = 0;
    bool has_length = false, chunked = false;
    for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
      if (absl::StartsWith(line, "Content-Length: ")) has_length = absl::SimpleAtoi(line.substr(16), &length);
      if (line == "Transfer-Encoding: chunked") chunked = true;
    }
    if (has_length == chunked && !absl::StartsWith(head, "HTTP/1.0")) Fail("a response framed neither or both ways", output);
    if (chunked) {
      while (true) {
        const size_t eol = out.find("\r\n");
        size_t size = 0;
        if (eol == std::string::npos || !absl::SimpleHexAtoi(out.substr(0, eol), &size) ||
            out.size() < eol + 2 + size + 2) {
          Fail("a broken chunk", output);
        }
        out.erase(0, eol + 2 + size + 2);
        if (size == 0) break;
      }
    } else if (has_length) {
      if (out.size() < length) Fail("a body shorter than its Content-Length", output);
      out.erase(0, length);
    } else {
      out.clear();  // HTTP/1.0 stream: to the end of the connection
    }
    ++count;
  }
  return count;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t piece = size_t{1} << (data[0] & 7);
  const bool check_auth = (data[0] & 8) != 0;
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string> input;
  for (size_t i = 0; i < bytes.size(); i += piece) input.push_back(bytes.substr(i, piece));
  const std::string output = HttpServer::ServeBytesForTest(Options(check_auth), input);
  const size_t responses = CheckResponses(output);
  // The shortest request a parser accepts ("A / HTTP/1.1\r\n\r\n" less spaces) is 16 bytes or so;
  // one more answer covers a refusal of the trailing bytes.
  if (responses > bytes.size() / 14 + 1) Fail(absl::StrCat(responses, " answers to ", bytes.size(), " bytes"), output);
  return 0;
}
