#include "server/api/rpc_outcome.h"

#include "server/api/grpc_status.h"

namespace elliptical::server {

void RpcOutcome::Record(const grpc::Status& status) {
  if (!metrics_) return;
  metrics_->AddInFlight(model_, rpc_, -1);
  metrics_->RecordRequest(model_, rpc_, GrpcCodeName(status.error_code()), absl::Now() - start_);
  switch (status.error_code()) {
    case grpc::StatusCode::RESOURCE_EXHAUSTED: metrics_->RecordRejection(model_, "queue_full"); break;
    case grpc::StatusCode::DEADLINE_EXCEEDED: metrics_->RecordRejection(model_, "deadline"); break;
    case grpc::StatusCode::CANCELLED: metrics_->RecordRejection(model_, "cancelled"); break;
    case grpc::StatusCode::UNAVAILABLE: metrics_->RecordRejection(model_, "unavailable"); break;
    default: break;
  }
}

}  // namespace elliptical::server
