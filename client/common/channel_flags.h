// The command-line flags of ChannelOptions, defined once for every client binary that links
// this library (elliptical-client, elliptical-loadgen), so the two cannot drift apart.
#pragma once

#include <string>

#include "client/common/channel.h"

namespace elliptical::client {

// ChannelOptions from --tls, --tls_ca_file, --tls_cert_file, --tls_key_file, --tls_server_name,
// --token and --token_file, for `address`.
ChannelOptions ChannelOptionsFromFlags(const std::string& address);

}  // namespace elliptical::client
