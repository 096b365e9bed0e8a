#include "server/api/generate_reactor.h"

#include "server/api/grpc_status.h"
#include "server/calls/proto_convert.h"

namespace elliptical::server {
namespace {

void FillToken(const GenerationStream::Event& e, v1::Token* token) {
  token->set_id(static_cast<uint32_t>(e.token_id));
  token->set_text(e.text);
  token->set_logprob(e.logprob);
}

void FillPromptScores(const GenerationStream::Event& e, v1::GenerateResponse* message) {
  for (const GenerationStream::ScoredToken& t : e.prompt_scores) FillScoredToken(t, message->add_prompt_tokens());
}

}  // namespace

void GenerateReactor::Reject(const grpc::Status& error) { Finish(error); }

void GenerateReactor::Start(std::unique_ptr<GenerateCall> call) {
  call_ = std::move(call);
  stream_ = &call_->stream();
  // The listener's first call picks up events already queued; it runs under the stream's
  // listener lock, which OnDone takes before `this` goes away.
  stream_->SetListener([this] { OnEvents(); });
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
      stream_->Cancel();
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
  stream_->Take(&events_);
  Action action;
  if (events_.empty()) return action;
  message_.Clear();
  // Every token queued so far goes in one message: a slow reader gets fewer, fuller messages.
  while (!events_.empty() && !events_.front().final) {
    const GenerationStream::Event& e = events_.front();
    if (e.has_prompt_scores) FillPromptScores(e, &message_);
    if (e.has_token || !e.text.empty()) {
      FillToken(e, message_.add_tokens());
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
  const GenerationStream::Event e = std::move(events_.front());
  events_.pop_front();
  finishing_ = true;
  if (!e.status.ok()) {
    action.finish = ToGrpcStatus(e.status);
    return action;
  }
  // The final message: held-back text (if any) and the summary.
  if (!e.text.empty()) FillToken(e, message_.mutable_token());
  FillSummary(e, message_.mutable_summary());
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
  if (stream_) stream_->Cancel();
}

void GenerateReactor::OnDone() {
  if (stream_) stream_->SetListener(nullptr);  // waits out a listener call in progress
  delete this;
}

}  // namespace elliptical::server
