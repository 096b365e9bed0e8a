#include "client/common/channel.h"

#include <fstream>
#include <iterator>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace elliptical::client {
namespace {

absl::StatusOr<std::string> ReadOptionFile(const char* option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", option, "=", path, ": cannot read the file"));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The token of a token file: its first line that is neither blank nor a '#' comment, so that
// the server's --auth_tokens_file format (one token a line) can be handed out as is.
absl::StatusOr<std::string> TokenFromFile(const std::string& path) {
  absl::StatusOr<std::string> content = ReadOptionFile("token_file", path);
  if (!content.ok()) return content.status();
  for (absl::string_view line : absl::StrSplit(*content, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && line.front() != '#') return std::string(line);
  }
  return absl::InvalidArgumentError(absl::StrCat("--token_file=", path, ": holds no token"));
}

// Adds the bearer token to every call's initial metadata. An interceptor rather than call
// credentials: gRPC refuses to send call credentials over a plaintext channel, and a token
// must also work without TLS (a mesh that terminates TLS, a loopback port).
class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class BearerTokenFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenFactory(std::string token) : header_(absl::StrCat("Bearer ", token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(&header_);
  }

 private:
  const std::string header_;  // lives as long as the channel, which owns the factory
};

bool UsesTls(const ChannelOptions& o) {
  return o.tls || !o.tls_ca_file.empty() || !o.tls_cert_file.empty() || !o.tls_server_name.empty();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& o) {
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together (mTLS): give both");
  }
  if (!o.token.empty() && !o.token_file.empty()) {
    return absl::InvalidArgumentError("give --token or --token_file, not both");
  }
  grpc::ChannelArguments args;
  if (o.max_receive_message_bytes > 0) args.SetMaxReceiveMessageSize(o.max_receive_message_bytes);

  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (UsesTls(o)) {
    grpc::SslCredentialsOptions ssl;
    if (!o.tls_ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadOptionFile("tls_ca_file", o.tls_ca_file);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *std::move(ca);
    }
    if (!o.tls_cert_file.empty()) {
      absl::StatusOr<std::string> cert = ReadOptionFile("tls_cert_file", o.tls_cert_file);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadOptionFile("tls_key_file", o.tls_key_file);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }

  std::string token = o.token;
  if (!o.token_file.empty()) {
    absl::StatusOr<std::string> t = TokenFromFile(o.token_file);
    if (!t.ok()) return t.status();
    token = *std::move(t);
  }
  if (token.empty()) return grpc::CreateCustomChannel(o.address, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerTokenFactory>(std::move(token)));
  return grpc::experimental::CreateCustomChannelWithInterceptors(o.address, credentials, args,
                                                                 std::move(interceptors));
}

std::string SecurityHint(const ChannelOptions& o, const grpc::Status& status) {
  const bool tls = UsesTls(o);
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    return o.token.empty() && o.token_file.empty()
               ? "the server requires a token: pass --token_file=FILE (or --token)"
               : "the server did not accept the token: check --token_file / --token";
  }
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return "";
  const std::string& m = status.error_message();
  if (!tls && (absl::StrContains(m, "Socket closed") || absl::StrContains(m, "Connection reset") ||
               absl::StrContains(m, "failed to connect"))) {
    return "if the server uses TLS, pass --tls_ca_file=CA.pem (and --tls_cert_file/--tls_key_file "
           "for mTLS)";
  }
  if (tls && (absl::StrContains(m, "handshake") || absl::StrContains(m, "SSL") ||
              absl::StrContains(m, "certificate"))) {
    return "the TLS handshake failed: check --tls_ca_file (the CA of the server's certificate), "
           "--tls_server_name, and whether the server wants a client certificate "
           "(--tls_cert_file/--tls_key_file)";
  }
  return "";
}

}  // namespace elliptical::client
