// The metrics of one call from arrival to its final status: in-flight gauge, count by code,
// duration, and the rejection reason when it was turned away. Every call of every protocol
// records the same way, through one of these.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/protocol.h"
#include "server/metrics/server_metrics.h"

namespace elliptical::server {

class RpcOutcome {
 public:
  // `model` is the metric label: the requested name when the repository knows it, else
  // "unknown", so clients cannot create series at will. `rpc` names the serving verb
  // (Classify, Segment, Generate, Score) whatever the protocol calls it.
  RpcOutcome(ServerMetrics* metrics, std::string model, const char* rpc,
             Protocol protocol = Protocol::kElliptical)
      : metrics_(metrics), model_(std::move(model)), rpc_(rpc), protocol_(ProtocolLabel(protocol)),
        start_(absl::Now()) {
    if (metrics_) metrics_->AddInFlight(model_, rpc_, protocol_, 1);
  }
  RpcOutcome(const RpcOutcome&) = delete;
  RpcOutcome& operator=(const RpcOutcome&) = delete;

  // Records the final status; call once (later calls are ignored).
  void Record(absl::StatusCode code);
  void Record(const absl::Status& status) { Record(status.code()); }
  const std::string& model() const { return model_; }

 private:
  ServerMetrics* const metrics_;
  const std::string model_;
  const char* const rpc_;
  const char* const protocol_;
  const absl::Time start_;
  bool recorded_ = false;
};

}  // namespace elliptical::server
