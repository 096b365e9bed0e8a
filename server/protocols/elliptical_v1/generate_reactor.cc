#include "server/protocols/elliptical_v1/generate_reactor.h"

#include "server/transport/grpc/grpc_status.h"
#include "server/protocols/elliptical_v1/v1_codec.h"

namespace elliptical::server {
void GenerateReactor::Reject(const grpc::Status& error) { Finish(error); }

void GenerateReactor::Start(std::unique_ptr<GenerateCall> call, bool coalesce_tokens) {
  call_ = std::move(call);
  coalesce_tokens_ = coalesce_tokens;
  // The listener's first call picks up events already queued; it runs under the stream's
  // listener lock, which OnDone takes before `this` goes away.
  call_->SetListener([this] { OnEvents(); });
}

void GenerateReactor::OnEvents() {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || finishing_) return;  // OnWriteDone picks them up
    action = NextAction();
  }
  Perform(action);
}

void GenerateReactor::OnWriteDone(bool ok) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      // The stream to the client broke: stop generating; the call finishes once.
      call_->Cancel();
      if (!finishing_) {
        finishing_ = true;
        action.finish = grpc::Status(grpc::StatusCode::CANCELLED, "the stream to the client broke");
      }
    } else if (finishing_) {
      return;
    } else {
      action = NextAction();
    }
  }
  Perform(action);
}

GenerateReactor::Action GenerateReactor::NextAction() {
  call_->Take(&events_);
  Action action;
  if (events_.empty()) return action;
  message_.Clear();
  // A client that reads `tokens` gets every token queued so far in one message (a slow reader
  // gets fewer, fuller messages); any other gets one token per message, in `token` as well, so a
  // reader of `token` alone loses none. The events wait here meanwhile: at most the request's
  // max_new_tokens of them.
  while (!events_.empty() && !IsFinal(events_.front())) {
    if (!coalesce_tokens_ && message_.tokens_size() > 0) break;
    if (const auto* scores = std::get_if<PromptScoresEvent>(&events_.front())) {
      for (const GenerationStream::ScoredToken& t : scores->tokens) FillScoredToken(t, message_.add_prompt_tokens());
    } else if (const auto* token = std::get_if<TokenEvent>(&events_.front())) {
      FillToken(*token, message_.add_tokens());
    }
    events_.pop_front();
  }
  if (message_.tokens_size() > 0 || message_.prompt_tokens_size() > 0) {
    if (message_.tokens_size() > 0) *message_.mutable_token() = message_.tokens(0);
    writing_ = true;
    action.write = true;
    return action;
  }
  if (events_.empty()) return action;
  const GenerationEvent e = std::move(events_.front());
  events_.pop_front();
  finishing_ = true;
  if (const auto* failed = std::get_if<FailedEvent>(&e)) {
    action.finish = ToGrpcStatus(failed->status);
    return action;
  }
  // The final message: held-back text (if any) and the summary.
  const FinishedEvent& finished = std::get<FinishedEvent>(e);
  if (!finished.text.empty()) FillToken(TokenEvent{false, 0, finished.text, 0}, message_.mutable_token());
  FillSummary(finished, message_.mutable_summary());
  writing_ = true;
  action.write = true;
  action.last = true;
  action.finish = grpc::Status::OK;
  return action;
}

void GenerateReactor::Perform(const Action& action) {
  // Outside mu_: gRPC may run the next reaction (and, after Finish, OnDone) on another thread.
  if (action.write && action.last) {
    call_->Finish(FromGrpcStatus(*action.finish));
    StartWriteAndFinish(&message_, grpc::WriteOptions(), *action.finish);
  } else if (action.write) {
    StartWrite(&message_);
  } else if (action.finish) {
    call_->Finish(FromGrpcStatus(*action.finish));
    Finish(*action.finish);
  }
}

void GenerateReactor::OnCancel() {
  if (call_) call_->Cancel();
}

void GenerateReactor::OnDone() {
  if (call_) call_->SetListener(nullptr);  // waits out a listener call in progress
  delete this;
}

}  // namespace elliptical::server
