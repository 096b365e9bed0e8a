// The HTTP transport's request framing, limits, pipelining and answers (server/transport/http/http_server.h),
// through its real session code on one connection in memory (HttpServer::ServeBytesForTest):
// each case is bytes a client sends and the bytes the server writes back (one case, the budget
// shared by connections, uses two loopback sockets). The same cases over
// real sockets, with timeouts and many connections, are in tests/integration/http_front_test.py.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/transport/http/http_router.h"
#include "server/transport/http/http_server.h"

namespace elliptical::server {
namespace {

struct Answer {
  int status = 0;
  std::string head;
  std::string body;
};

// Splits what the server wrote into responses (Content-Length or chunked bodies).
std::vector<Answer> Responses(std::string out) {
  std::vector<Answer> answers;
  while (!out.empty()) {
    const size_t end = out.find("\r\n\r\n");
    if (end == std::string::npos) break;
    Answer a;
    a.head = out.substr(0, end);
    out.erase(0, end + 4);
    int status = 0;
    if (!absl::SimpleAtoi(a.head.substr(9, 3), &status)) break;
    a.status = status;
    if (status == 100) continue;
    size_t length = 0;
    bool chunked = false;
    for (absl::string_view line : absl::StrSplit(a.head, "\r\n")) {
      if (absl::StartsWithIgnoreCase(line, "content-length: ")) (void)absl::SimpleAtoi(line.substr(16), &length);
      if (absl::StartsWithIgnoreCase(line, "transfer-encoding: chunked")) chunked = true;
    }
    if (chunked) {
      while (true) {
        const size_t eol = out.find("\r\n");
        if (eol == std::string::npos) return answers;
        size_t size = 0;
        if (!absl::SimpleHexAtoi(out.substr(0, eol), &size)) return answers;
        a.body += out.substr(eol + 2, size);
        out.erase(0, eol + 2 + size + 2);
        if (size == 0) break;
      }
    } else {
      a.body = out.substr(0, length);
      out.erase(0, length);
    }
    answers.push_back(std::move(a));
  }
  return answers;
}

// A server whose one route echoes what it got: method, path, body size, and the body.
HttpServerOptions EchoOptions() {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  o.max_header_bytes = 4096;
  o.handler = [](HttpRequest& request, const std::shared_ptr<HttpReply>& reply) {
    if (request.path == "/stream") {
      reply->BeginStream(HttpResponse{200, "text/event-stream", {}, ""});
      reply->Write("data: one\n\n", [reply](bool ok) {
        if (ok) reply->Write("data: two\n\n", [reply](bool) { reply->End(); });
      });
      return;
    }
    if (request.path == "/later") {  // answered from posted work, as routes do
      reply->Post([reply] { reply->Send(HttpResponse{202, "text/plain", {}, "later"}); });
      return;
    }
    reply->Send(HttpResponse{200, "text/plain", {},
                             absl::StrCat(request.method, " ", request.path, " ", request.body.size(), " ",
                                          request.body)});
  };
  return o;
}

std::vector<Answer> Serve(std::vector<std::string> input, HttpServerOptions o = EchoOptions()) {
  return Responses(HttpServer::ServeBytesForTest(std::move(o), std::move(input)));
}

TEST(HttpTransportTest, AnswersARequestWithABody) {
  auto a = Serve({"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 200);
  EXPECT_EQ(a[0].body, "POST /echo 5 hello");
}

TEST(HttpTransportTest, PipelinedRequestsAreAnsweredInOrder) {
  auto a = Serve({"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /c "
                  "HTTP/1.1\r\nHost: x\r\n\r\n"});
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].body, "GET /a 0 ");
  EXPECT_EQ(a[1].body, "POST /b 2 hi");
  EXPECT_EQ(a[2].body, "GET /c 0 ");
}

TEST(HttpTransportTest, BytesReadAheadDuringALaterAnswerAreParsedOnce) {
  // The first request is answered from posted work; the second came with it and is read ahead;
  // the third arrives after both answers, into the read left pending meanwhile.
  auto a = Serve({"GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
                  "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"});
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].body, "later");
  EXPECT_EQ(a[1].body, "GET /a 0 ");
  EXPECT_EQ(a[2].body, "GET /b 0 ");
}

TEST(HttpTransportTest, RequestSplitIntoSmallPiecesIsReassembled) {
  const std::string request = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  std::vector<std::string> pieces;
  for (char c : request) pieces.emplace_back(1, c);
  auto a = Serve(pieces);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].body, "POST /echo 5 abcde");
}

TEST(HttpTransportTest, ContentLengthWithTransferEncodingIsRefusedAndClosed) {
  auto a = Serve({"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"});
  ASSERT_EQ(a.size(), 1u) << "nothing after the refusal is answered";
  EXPECT_EQ(a[0].status, 400);
  EXPECT_TRUE(absl::StrContains(a[0].head, "Connection: close"));
  EXPECT_TRUE(absl::StrContains(a[0].body, "Content-Length with Transfer-Encoding"));
}

TEST(HttpTransportTest, DifferingContentLengthsAreRefused) {
  auto a = Serve({"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 400);
  EXPECT_TRUE(absl::StrContains(a[0].head, "Connection: close"));
}

TEST(HttpTransportTest, TransferEncodingNotEndingInChunkedIsRefused) {
  auto a = Serve({"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc"});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 400);
  EXPECT_TRUE(absl::StrContains(a[0].body, "chunked"));
}

TEST(HttpTransportTest, DeclaredBodyOverTheLimitIsRefusedBeforeItIsRead) {
  auto a = Serve({"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n"});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 413);
  EXPECT_TRUE(absl::StrContains(a[0].body, "1024"));
}

TEST(HttpTransportTest, ChunkedBodyOverTheLimitIsRefusedAsItPassesIt) {
  std::vector<std::string> input = {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"};
  for (int i = 0; i < 8; ++i) input.push_back(absl::StrCat("100\r\n", std::string(256, 'a'), "\r\n"));
  input.push_back("0\r\n\r\n");
  auto a = Serve(input);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 413);
  EXPECT_TRUE(absl::StrContains(a[0].head, "Connection: close"));
}

TEST(HttpTransportTest, ChunkedBodyUnderTheLimitIsAccepted) {
  std::vector<std::string> input = {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"};
  for (int i = 0; i < 4; ++i) input.push_back(absl::StrCat("100\r\n", std::string(256, 'a'), "\r\n"));
  input.push_back("0\r\n\r\n");
  auto a = Serve(input);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 200);
  EXPECT_TRUE(absl::StartsWith(a[0].body, "POST /echo 1024 "));
}

// A blocking loopback client for the one case that needs two connections at once.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// What arrives until `marker` has (or the connection ends, or 10 s pass).
std::string ReadUntil(int fd, const std::string& marker) {
  std::string got;
  char buf[4096];
  while (got.find(marker) == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

TEST(HttpTransportTest, BodiesBeyondTheServersBudgetInFlightAreRefused) {
  HttpServerOptions o = EchoOptions();
  o.host = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  o.max_body_bytes = 600;
  o.max_body_bytes_in_flight = 1000;
  auto server = HttpServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 600\r\nExpect: 100-continue\r\n\r\n";
  // A declares 600 bytes and holds them while its body trickles: the 100 says its head is in.
  const int a = Connect((*server)->port());
  ASSERT_GE(a, 0);
  ASSERT_EQ(send(a, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  ASSERT_NE(ReadUntil(a, "100 Continue\r\n\r\n").find("100 Continue"), std::string::npos);
  // B's 600 would pass the 1000 all connections may hold.
  const int b = Connect((*server)->port());
  ASSERT_GE(b, 0);
  ASSERT_EQ(send(b, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  const std::string refused = ReadUntil(b, "retry later");
  EXPECT_TRUE(absl::StartsWith(refused, "HTTP/1.1 503")) << refused;
  close(b);
  // A's body arrives and is answered; its bytes go back to the budget.
  const std::string body(600, 'a');
  ASSERT_EQ(send(a, body.data(), body.size(), 0), static_cast<ssize_t>(body.size()));
  EXPECT_NE(ReadUntil(a, "POST /echo 600").find("HTTP/1.1 200"), std::string::npos);
  close(a);
  const int c = Connect((*server)->port());
  ASSERT_GE(c, 0);
  const std::string whole = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 600\r\n\r\n" + body;
  ASSERT_EQ(send(c, whole.data(), whole.size(), 0), static_cast<ssize_t>(whole.size()));
  EXPECT_NE(ReadUntil(c, "POST /echo 600").find("HTTP/1.1 200"), std::string::npos) << "the budget was returned";
  close(c);
  (*server)->Stop();
}

TEST(HttpTransportTest, BodyWithoutLengthIsNotReadAsBody) {
  // No Content-Length and no Transfer-Encoding: the request has no body (RFC 9112 6.3); the
  // bytes after it are no request, so they are refused and the connection closes.
  auto a = Serve({"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n{\"prompt\": \"x\"}"});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].body, "POST /echo 0 ");
  EXPECT_EQ(a[1].status, 400);
  EXPECT_TRUE(absl::StrContains(a[1].head, "Connection: close"));
}

TEST(HttpTransportTest, OversizedHeadIsRefusedWith431) {
  auto a = Serve({absl::StrCat("GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ", std::string(8192, 'b'), "\r\n\r\n")});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 431);
}

TEST(HttpTransportTest, ExpectContinueGetsA100BeforeTheBody) {
  const std::string out = HttpServer::ServeBytesForTest(
      EchoOptions(), {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n", "ok"});
  EXPECT_TRUE(absl::StartsWith(out, "HTTP/1.1 100 Continue\r\n\r\n")) << out;
  auto a = Responses(out);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].body, "POST /echo 2 ok");
}

TEST(HttpTransportTest, HeadCheckRefusesBeforeTheBody) {
  HttpServerOptions o = EchoOptions();
  o.check_head = [](const HttpRequest& head) -> std::optional<HttpResponse> {
    if (head.Header("authorization")) return std::nullopt;
    return HttpResponse{401, "text/plain", {{"WWW-Authenticate", "Bearer"}}, "no token"};
  };
  auto a = Serve({"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"}, o);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 401);
  EXPECT_TRUE(absl::StrContains(a[0].head, "WWW-Authenticate: Bearer"));
  a = Serve({"POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\n\r\nabc"}, o);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 200);
}

TEST(HttpTransportTest, StreamsAreChunkedAndKeepTheConnection) {
  auto a = Serve({"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n"});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_TRUE(absl::StrContains(a[0].head, "Transfer-Encoding: chunked"));
  EXPECT_EQ(a[0].body, "data: one\n\ndata: two\n\n");
  EXPECT_EQ(a[1].body, "GET /after 0 ");
}

TEST(HttpTransportTest, AnswersFromPostedWorkArrive) {
  auto a = Serve({"GET /later HTTP/1.1\r\nHost: x\r\n\r\n"});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 202);
  EXPECT_EQ(a[0].body, "later");
}

TEST(HttpTransportTest, Http10GetsConnectionClose) {
  auto a = Serve({"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n"});
  ASSERT_EQ(a.size(), 1u) << "without keep-alive the connection ends after the first answer";
  EXPECT_TRUE(absl::StartsWith(a[0].head, "HTTP/1.0 200"));
}

TEST(HttpTransportTest, GarbageIsRefused) {
  auto a = Serve({"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n"});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, 400);
}

TEST(HttpRouter, CapturesArePercentDecodedAfterSplitting) {
  HttpRouter router;
  router.Add("POST", "/v2/repository/models/{m}/load", [](HttpRequest&, const std::shared_ptr<HttpReply>&) {});
  HttpRequest request;
  request.method = "POST";
  const HttpHandler* handler = nullptr;
  request.path = "/v2/repository/models/..%2Fx/load";
  ASSERT_EQ(router.Route(request, &handler), HttpRouter::Match::kFound);
  EXPECT_EQ(request.Param("m"), "../x");
  request.path = "/v2/repository/models/my%20model%zz%4/load";
  ASSERT_EQ(router.Route(request, &handler), HttpRouter::Match::kFound);
  EXPECT_EQ(request.Param("m"), "my model%zz%4");
  // A literal '/' still separates segments: no route.
  request.path = "/v2/repository/models/../x/load";
  EXPECT_EQ(router.Route(request, &handler), HttpRouter::Match::kNoRoute);
  request.method = "GET";
  request.path = "/v2/repository/models/x/load";
  EXPECT_EQ(router.Route(request, &handler), HttpRouter::Match::kWrongMethod);
  EXPECT_EQ(PercentDecode("%41%2f%"), "A/%");
}

}  // namespace
}  // namespace elliptical::server
