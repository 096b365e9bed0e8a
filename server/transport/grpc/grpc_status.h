// The one place where absl::Status becomes grpc::Status. The canonical codes are shared, so
// the mapping is exact; keeping it here means every RPC reports errors the same way.
#pragma once

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace elliptical::server {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace elliptical::server
