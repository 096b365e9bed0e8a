// One Classify or Segment call as a unary reactor: it submits the decoded images to the model's
// servable and finishes when the servable's callback runs (on a model instance thread). A
// cancelled call (client gone or deadline passed) drops its queued work at once.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "server/api/call_tracker.h"
#include "server/api/grpc_status.h"
#include "server/api/rpc_outcome.h"
#include "server/serving/vision_servable.h"

namespace elliptical::server {

class VisionCall final : public grpc::ServerUnaryReactor {
 public:
  VisionCall(ServerMetrics* metrics, std::string model_label, const char* rpc, CallTracker* calls)
      : scope_(calls), outcome_(metrics, std::move(model_label), rpc) {}

  // Finishes the call with `error` before anything was submitted.
  void Reject(const absl::Status& error) { FinishNow(ToGrpcStatus(error)); }

  // Submits through `submit` (which schedules the work and returns its handle, or an error
  // that finishes the call now). The servable must outlive the pending work: `keep` holds it.
  void Start(std::shared_ptr<const void> keep,
             const std::function<absl::StatusOr<std::shared_ptr<PendingCall>>()>& submit) {
    keep_ = std::move(keep);
    auto pending = submit();
    std::optional<grpc::Status> finish;
    std::shared_ptr<PendingCall> cancel;
    {
      absl::MutexLock lock(&mu_);
      started_ = true;
      if (!pending.ok()) {
        finish = ToGrpcStatus(pending.status());
      } else {
        pending_ = *std::move(pending);
        finish = std::move(deferred_);
        if (!finish && cancelled_) cancel = pending_;
      }
    }
    // Each of these may finish the call and delete `this`: nothing touches it afterwards.
    if (finish) {
      FinishNow(*finish);
    } else if (cancel) {
      cancel->Cancel();
    }
  }

  // Finishes the call; the servable's callback calls it exactly once, possibly before Start
  // has returned (then Start finishes it, so `this` outlives Start).
  void Done(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (!started_) {
        deferred_ = status;
        return;
      }
    }
    FinishNow(status);
  }

  void OnCancel() override {
    std::shared_ptr<PendingCall> pending;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      pending = pending_;
    }
    if (pending) pending->Cancel();
  }
  void OnDone() override { delete this; }

 private:
  void FinishNow(const grpc::Status& status) {
    outcome_.Record(status);
    Finish(status);  // `this` may be gone once it returns
  }

  CallTracker::Scope scope_;
  RpcOutcome outcome_;
  std::shared_ptr<const void> keep_;
  absl::Mutex mu_;
  std::shared_ptr<PendingCall> pending_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> deferred_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elliptical::server
