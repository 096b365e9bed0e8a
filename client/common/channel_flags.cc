#include "client/common/channel_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(bool, tls, false,
          "Connect with TLS, trusting the system's root certificates (implied by --tls_ca_file, "
          "--tls_cert_file and --tls_server_name).");
ABSL_FLAG(std::string, tls_ca_file, "", "TLS: PEM CA certificates to trust for the server.");
ABSL_FLAG(std::string, tls_cert_file, "", "mTLS: this client's PEM certificate chain.");
ABSL_FLAG(std::string, tls_key_file, "", "mTLS: the PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_server_name, "",
          "TLS: the name expected in the server's certificate, when it is not the host of the "
          "address (for example when connecting by IP).");
ABSL_FLAG(std::string, token, "",
          "Bearer token sent on every call (visible in the process list: prefer --token_file).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the bearer token (its first line that is not blank or a '#' comment).");

namespace elliptical::client {

ChannelOptions ChannelOptionsFromFlags(const std::string& address) {
  ChannelOptions o;
  o.address = address;
  o.tls = absl::GetFlag(FLAGS_tls);
  o.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  o.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  o.token = absl::GetFlag(FLAGS_token);
  o.token_file = absl::GetFlag(FLAGS_token_file);
  return o;
}

}  // namespace elliptical::client
