// One Generate call as a server-streaming reactor: it only moves events from the request's
// GenerationStream to the wire. The scheduler never waits for it: tokens queue in the stream,
// the reactor writes one message at a time: one token each, or, for a client that said it reads
// `tokens` (GenerateRequest.coalesce_tokens), every token that queued meanwhile. OnCancel marks
// the stream cancelled; the scheduler frees the sequence's slot at its next step and the final
// event finishes the call.
#pragma once

#include <deque>
#include <memory>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "elliptical/v1/inference_service.pb.h"
#include "server/core/inference_calls.h"

namespace elliptical::server {

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Either finishes the call with `error` (InferenceCalls refused it), or streams the
  // accepted `call`'s events.
  void Reject(const grpc::Status& error);
  void Start(std::unique_ptr<GenerateCall> call, bool coalesce_tokens);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // With mu_ held: what to do next, decided from the queued events.
  struct Action {
    bool write = false;
    bool last = false;  // write, then finish with `status`
    std::optional<grpc::Status> finish;
  };
  Action NextAction() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Perform(const Action& action);
  void OnEvents();

  std::unique_ptr<GenerateCall> call_;
  bool coalesce_tokens_ = false;

  absl::Mutex mu_;
  std::deque<GenerationEvent> events_ ABSL_GUARDED_BY(mu_);
  v1::GenerateResponse message_ ABSL_GUARDED_BY(mu_);  // the one in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elliptical::server
