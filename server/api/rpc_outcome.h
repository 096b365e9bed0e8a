// The metrics of one RPC from arrival to its final status: in-flight gauge, count by code,
// duration, and the rejection reason when it was turned away. Every RPC kind records the same
// way, through one of these.
#pragma once

#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/metrics/server_metrics.h"

namespace elliptical::server {

class RpcOutcome {
 public:
  // `model` is the metric label: the requested name when the repository knows it, else
  // "unknown", so clients cannot create series at will.
  RpcOutcome(ServerMetrics* metrics, std::string model, const char* rpc)
      : metrics_(metrics), model_(std::move(model)), rpc_(rpc), start_(absl::Now()) {
    if (metrics_) metrics_->AddInFlight(model_, rpc_, 1);
  }
  RpcOutcome(const RpcOutcome&) = delete;
  RpcOutcome& operator=(const RpcOutcome&) = delete;

  // Records the final status; call once.
  void Record(const grpc::Status& status);
  const std::string& model() const { return model_; }

 private:
  ServerMetrics* const metrics_;
  const std::string model_;
  const char* const rpc_;
  const absl::Time start_;
};

}  // namespace elliptical::server
