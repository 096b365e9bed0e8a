#include "server/core/rpc_outcome.h"

namespace elliptical::server {

void RpcOutcome::Record(absl::StatusCode code) {
  if (!metrics_ || recorded_) return;
  recorded_ = true;
  metrics_->AddInFlight(model_, rpc_, protocol_, -1);
  // Labelled with absl's code names, gRPC's canonical ones ("OK", "INVALID_ARGUMENT", ...).
  metrics_->RecordRequest(model_, rpc_, protocol_, code, absl::Now() - start_);
  switch (code) {
    case absl::StatusCode::kResourceExhausted: metrics_->RecordRejection(model_, "queue_full"); break;
    case absl::StatusCode::kDeadlineExceeded: metrics_->RecordRejection(model_, "deadline"); break;
    case absl::StatusCode::kCancelled: metrics_->RecordRejection(model_, "cancelled"); break;
    case absl::StatusCode::kUnavailable: metrics_->RecordRejection(model_, "unavailable"); break;
    default: break;
  }
}

}  // namespace elliptical::server
