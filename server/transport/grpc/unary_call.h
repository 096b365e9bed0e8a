// A unary gRPC call served by InferenceCalls (server/core): the reactor starts the call, hands
// the client's cancellation to it and finishes with its status. Used by every gRPC front end
// (elliptical.v1 here, the Open Inference Protocol in server/protocols/kserve).
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "server/transport/grpc/grpc_status.h"
#include "server/core/inference_calls.h"

namespace elliptical::server {

class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  // Starts the call with `start`, which passes `finish` to InferenceCalls and returns its
  // handle. `finish` may run on another thread before `start` returns; it finishes this
  // reactor, which stays alive until both have happened.
  using Start = std::function<std::shared_ptr<CallHandle>(InferenceCalls::Finish finish)>;

  explicit UnaryCall(const Start& start) {
    std::shared_ptr<CallHandle> handle =
        start([this](const absl::Status& status) { Finish(ToGrpcStatus(status)); });
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      handle_ = handle;
      cancelled = cancelled_;
    }
    if (cancelled && handle) handle->Cancel();
    Unref();
  }

  void OnCancel() override {
    std::shared_ptr<CallHandle> handle;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      handle = handle_;
    }
    if (handle) handle->Cancel();
  }
  void OnDone() override { Unref(); }

 private:
  // The constructor and OnDone each hold one reference: gRPC may finish the call (and run
  // OnDone) while the constructor is still running.
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::atomic<int> refs_{2};
  absl::Mutex mu_;
  std::shared_ptr<CallHandle> handle_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace elliptical::server
