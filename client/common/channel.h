// The channel every command-line client (elliptical-client, elliptical-loadgen) opens: plaintext
// or TLS, with a client certificate for mTLS, and a bearer token sent on every call. One place,
// so both tools accept the same options and report a bad file the same way.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace elliptical::client {

struct ChannelOptions {
  std::string address;          // host:port
  bool tls = false;             // TLS with the system's roots; implied by any tls_* file below
  std::string tls_ca_file;      // PEM roots that the server's certificate must chain to
  std::string tls_cert_file;    // mTLS: the client's PEM certificate chain...
  std::string tls_key_file;     // ...and its private key
  std::string tls_server_name;  // name checked against the server's certificate (default: host)
  std::string token;            // bearer token, sent as "authorization: Bearer <token>"
  std::string token_file;       // a file whose first non-comment line is the token
  int max_receive_message_bytes = 0;  // 0: gRPC's default
};

// The channel, or INVALID_ARGUMENT naming the option and file that is wrong. Nothing is
// contacted yet: a server that refuses the handshake or the token shows in the first call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& options);

// A hint to print after a failed call when the failure looks like a transport-security
// mismatch (plaintext to a TLS port, an untrusted certificate) or a missing token; empty if none.
std::string SecurityHint(const ChannelOptions& options, const grpc::Status& status);

}  // namespace elliptical::client
