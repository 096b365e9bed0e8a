// The calls every front end makes, whatever its protocol: elliptical.v1 over gRPC (server/protocols/elliptical_v1),
// the Open Inference Protocol over gRPC and HTTP (server/protocols/kserve), and OpenAI's
// completions (server/protocols/openai) all translate their requests into the plain structs of requests.h and serve
// them here; no wire type appears in this interface. This is where a request is checked against
// RequestLimits, refused while draining, charged to the pixel budget, decoded, submitted to its
// model's servable, answered, and recorded in the metrics (labelled with its protocol). No front
// end has a serving path of its own.
//
// Thread-safety: every method may be called from any thread. Callbacks run on a model's
// instance thread (or the generation scheduler's), or on the caller's thread when the call
// fails before it is submitted.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/call_tracker.h"
#include "server/core/generation_events.h"
#include "server/core/protocol.h"
#include "server/core/request_limits.h"
#include "server/core/requests.h"
#include "server/core/rpc_outcome.h"
#include "server/generation/generation_scheduler.h"
#include "server/input/pixel_budget.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/model_repository.h"

namespace elliptical::server {

// What a front end knows about a call besides its request.
struct CallContext {
  Protocol protocol = Protocol::kElliptical;
  absl::Time deadline = absl::InfiniteFuture();
};

// A unary call in progress. Cancel() (the client went away) drops its queued work and stops a
// running batch that nobody else waits for; the call then finishes with CANCELLED. Holding
// the handle keeps the call counted as in progress for the drain on shutdown.
class CallHandle {
 public:
  virtual ~CallHandle() = default;
  virtual void Cancel() = 0;
};

// One accepted Generate (or scoring) call: its events and the metrics record of its outcome.
// The front end moves events to its client and calls Finish once with the status it gave the
// client (CANCELLED when the client went away).
class GenerateCall {
 public:
  GenerateCall(std::shared_ptr<const void> keep, std::shared_ptr<GenerationStream> stream,
               std::unique_ptr<RpcOutcome> outcome, CallTracker* calls)
      : scope_(calls), keep_(std::move(keep)), stream_(std::move(stream)), outcome_(std::move(outcome)) {}

  // Moves the events produced so far into `out` (appending); false when there were none.
  bool Take(std::deque<GenerationEvent>* out);
  // `on_ready` runs once now and then on the scheduler thread after each event; it must not
  // block. Clear it (nullptr) before the reader goes away: once that returns, it is never
  // called again.
  void SetListener(std::function<void()> on_ready) { stream_->SetListener(std::move(on_ready)); }
  // Stops the generation at its next step (client gone, write failed).
  void Cancel() { stream_->Cancel(); }
  // Records the final status in the metrics; later calls are ignored.
  void Finish(const absl::Status& status) { outcome_->Record(status); }

 private:
  CallTracker::Scope scope_;
  std::shared_ptr<const void> keep_;  // the servable outlives the stream's sequence
  std::shared_ptr<GenerationStream> stream_;
  std::unique_ptr<RpcOutcome> outcome_;
  std::deque<GenerationStream::Event> records_;  // Take's scratch (one reader at a time)
};

class InferenceCalls {
 public:
  // `done` runs exactly once with the call's result or why it failed, possibly before the
  // method that took it returns.
  template <typename Result>
  using Done = std::function<void(absl::StatusOr<Result>)>;
  using Finish = std::function<void(const absl::Status&)>;

  // `metrics` (optional) receives every call's outcome.
  InferenceCalls(const ModelRepository* repository, RequestLimits limits, ServerMetrics* metrics = nullptr)
      : repository_(repository), limits_(limits), metrics_(metrics), pixels_(limits.max_inflight_pixels) {}

  const ModelRepository& repository() const { return *repository_; }
  const RequestLimits& limits() const { return limits_; }
  // The calls in progress; shutdown drains them (main.cc).
  CallTracker* calls() { return &calls_; }

  // The request's image bytes must stay valid until `done` has run.
  std::shared_ptr<CallHandle> Classify(const CallContext& context, VisionRequest request, Done<ClassifyResult> done);
  std::shared_ptr<CallHandle> Segment(const CallContext& context, VisionRequest request, Done<SegmentResult> done);
  // Scores a text with a language model (per-token log-probabilities, perplexity): a pure
  // scoring request through the model's generation scheduler, batched with its other work.
  std::shared_ptr<CallHandle> Score(const CallContext& context, ScoreRequest request, Done<ScoreResult> done);
  // An accepted stream, or why the request was refused (already recorded).
  absl::StatusOr<std::unique_ptr<GenerateCall>> Generate(const CallContext& context, const GenerateRequest& request);
  // Score as a stream of generation events (the prompt-scores event, then the final one), for
  // front ends that already read Generate streams (OpenAI's echo with max_tokens 0).
  absl::StatusOr<std::unique_ptr<GenerateCall>> ScoreStream(const CallContext& context, const ScoreRequest& request);

  // Counts a call that its front end refused before it could become one of the calls above
  // (a request its protocol mapping cannot express), so the request metrics see every call.
  void RecordRefusal(const CallContext& context, const char* rpc, const std::string& model_name,
                     const absl::Status& status) {
    RpcOutcome(metrics_, ModelLabel(model_name), rpc, context.protocol).Record(status);
  }

  // The model's snapshot after its name is checked against the limits (NOT_FOUND when unknown);
  // `version` as ModelRepository::Describe takes it.
  absl::StatusOr<ModelSnapshot> Describe(const std::string& model_name, absl::string_view version = "") const;

 private:
  template <typename ServableT, typename Result, typename Fill>
  std::shared_ptr<CallHandle> ServeVision(const CallContext& context, const char* rpc, VisionRequest request,
                                          Done<Result> done, Fill fill);
  absl::StatusOr<std::unique_ptr<GenerateCall>> SubmitToLanguageModel(
      const CallContext& context, const char* rpc, const std::string& model_name,
      const std::function<absl::StatusOr<GenerationParams>()>& params);
  // The metric label of a model name: the name when the repository knows it, else "unknown".
  std::string ModelLabel(const std::string& name) const;
  // Encoded files and raw pixels are decoded; a client's tensor passes as a view.
  absl::StatusOr<std::vector<VisionInput>> DecodeImages(const std::vector<ImageInput>& images) const;
  absl::Status Refusal() const;

  const ModelRepository* const repository_;
  const RequestLimits limits_;
  ServerMetrics* const metrics_;
  PixelBudget pixels_;
  CallTracker calls_;
};

}  // namespace elliptical::server
