#include "server/calls/inference_calls.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/exception_guard.h"
#include "server/calls/proto_convert.h"
#include "server/calls/request_validation.h"
#include "server/log.h"
#include "server/serving/language_servable.h"
#include "server/serving/vision_servable.h"

namespace elliptical::server {
namespace {

constexpr int kDefaultTopK = 5;

// The request was validated: every value is one of the enum's.
Priority PriorityFromProto(int priority) {
  switch (priority) {
    case v1::PRIORITY_LOW: return Priority::kLow;
    case v1::PRIORITY_HIGH: return Priority::kHigh;
    default: return Priority::kNormal;
  }
}

void LogInternal(const absl::Status& status, const char* rpc, const std::string& label) {
  if (status.code() != absl::StatusCode::kInternal) return;
  static LogLimiter limiter;
  LogErrorLimited(&limiter, "%s %s: %s", rpc, label, status.message());
}

// One Classify or Segment call from its arrival to its single finish. The servable's callback
// may run before Start has returned (a batch can complete on an instance thread at once), and
// the client may cancel at any point: the three are ordered here.
class VisionRun final : public CallHandle {
 public:
  VisionRun(CallTracker* calls, ServerMetrics* metrics, std::string label, const char* rpc, Protocol protocol,
            InferenceCalls::Finish finish)
      : scope_(calls), outcome_(metrics, std::move(label), rpc, protocol), finish_(std::move(finish)) {}

  // Finishes the call with `error` before anything was submitted.
  void Reject(const absl::Status& error) { FinishNow(error); }

  // Submits through `submit`, which schedules the work and returns its handle, or an error
  // that finishes the call now. `keep` holds the servable until the call is finished.
  void Start(std::shared_ptr<const void> keep,
             const std::function<absl::StatusOr<std::shared_ptr<PendingCall>>()>& submit) {
    auto pending = submit();
    std::optional<absl::Status> finish;
    std::shared_ptr<PendingCall> cancel;
    {
      absl::MutexLock lock(&mu_);
      started_ = true;
      if (!pending.ok()) {
        finish = pending.status();
      } else if (deferred_) {
        finish = std::move(deferred_);
      } else {
        pending_ = *std::move(pending);
        keep_ = std::move(keep);
        if (cancelled_) cancel = pending_;
      }
    }
    if (finish) {
      FinishNow(*finish);
    } else if (cancel) {
      cancel->Cancel();
    }
  }

  // The servable's callback: exactly once, possibly before Start has returned (then Start
  // finishes the call).
  void Done(const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (!started_) {
        deferred_ = status;
        return;
      }
    }
    FinishNow(status);
  }

  void Cancel() override {
    std::shared_ptr<PendingCall> pending;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      pending = pending_;
    }
    if (pending) pending->Cancel();
  }

 private:
  void FinishNow(const absl::Status& status) {
    InferenceCalls::Finish finish;
    std::shared_ptr<PendingCall> pending;
    std::shared_ptr<const void> keep;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      finish = std::move(finish_);
      // The pending call's callback holds this run: dropping it here ends the cycle.
      pending = std::move(pending_);
      keep = std::move(keep_);
    }
    outcome_.Record(status);
    finish(status);
  }

  CallTracker::Scope scope_;
  RpcOutcome outcome_;
  absl::Mutex mu_;
  InferenceCalls::Finish finish_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const void> keep_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<PendingCall> pending_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> deferred_ ABSL_GUARDED_BY(mu_);
};

// One Score call: the events of its scoring stream (InferenceCalls::ScoreStream) gathered into
// the response. The run keeps itself alive until the final event; the stream's listener holds
// it weakly, so nothing is left behind once the call has finished.
class ScoreRun final : public CallHandle, public std::enable_shared_from_this<ScoreRun> {
 public:
  ScoreRun(const v1::ScoreRequest* request, v1::ScoreResponse* response, InferenceCalls::Finish finish)
      : request_(request), response_(response), finish_(std::move(finish)) {}

  void Start(std::unique_ptr<GenerateCall> call) {
    call_ = std::move(call);
    self_ = shared_from_this();
    std::weak_ptr<ScoreRun> weak = self_;
    // The listener's first call picks up events already queued.
    call_->stream().SetListener([weak] {
      if (std::shared_ptr<ScoreRun> run = weak.lock()) run->OnEvents();
    });
  }

  // Finishes the call with `error` (ScoreStream refused it and recorded why).
  void Reject(const absl::Status& error) {
    done_ = true;
    InferenceCalls::Finish finish = std::move(finish_);
    finish(error);
  }

  void Cancel() override {
    if (call_) call_->Cancel();
  }

 private:
  // On the scheduler's thread (or the caller's for the listener's first call); the stream's
  // listener lock orders the calls.
  void OnEvents() {
    std::deque<GenerationStream::Event> events;
    call_->stream().Take(&events);
    for (GenerationStream::Event& e : events) {
      if (done_) return;
      if (e.has_prompt_scores) {
        for (const GenerationStream::ScoredToken& t : e.prompt_scores) FillScoredToken(t, response_->add_tokens());
      }
      if (!e.final) continue;
      done_ = true;
      absl::Status status = e.status;
      if (status.ok()) {
        response_->set_model_name(request_->model_name());
        response_->set_total_logprob(e.scored_logprob_sum);
        response_->set_scored_tokens(static_cast<uint32_t>(e.scored_tokens));
        response_->set_perplexity(GenerationStream::Perplexity(e.scored_logprob_sum, e.scored_tokens));
        // The scheduler reports the whole time to the scores; the queue and compute split is
        // not kept per request.
        response_->mutable_timing()->set_compute_us(static_cast<uint64_t>(absl::ToInt64Microseconds(e.total)));
      }
      call_->Finish(status);
      std::shared_ptr<ScoreRun> keep = std::move(self_);  // gone once this returns
      InferenceCalls::Finish finish = std::move(finish_);
      finish(status);
      return;
    }
  }

  const v1::ScoreRequest* const request_;
  v1::ScoreResponse* const response_;
  InferenceCalls::Finish finish_;
  std::unique_ptr<GenerateCall> call_;
  std::shared_ptr<ScoreRun> self_;
  bool done_ = false;  // only touched under the stream's listener lock
};

}  // namespace

std::string InferenceCalls::ModelLabel(const std::string& name) const {
  return repository_->Contains(name) ? name : "unknown";
}

absl::Status InferenceCalls::Refusal() const {
  if (!calls_.draining()) return absl::OkStatus();
  return absl::UnavailableError("the server is shutting down; retry on another replica");
}

absl::StatusOr<ModelSnapshot> InferenceCalls::Describe(const std::string& model_name) const {
  if (absl::Status s = ValidateModelName(model_name, limits_); !s.ok()) return s;
  return repository_->Describe(model_name);
}

// Classify and Segment: validate, lease the pixels, decode, submit to the model's servable, and
// finish from the servable's callback with `fill(results, labels)` filling the response. An
// exception anywhere fails the call with INTERNAL.
template <typename ServableT, typename Request, typename Response, typename Validate, typename Fill>
std::shared_ptr<CallHandle> InferenceCalls::ServeVision(const CallContext& context, const char* rpc,
                                                        const Request* request, Response* response,
                                                        Finish finish, Validate validate, Fill fill) {
  const std::string label = ModelLabel(request->model_name());
  auto run = std::make_shared<VisionRun>(&calls_, metrics_, label, rpc, context.protocol, std::move(finish));
  struct Ready {
    std::shared_ptr<ServableT> model;
    std::vector<model::RgbImage> images;
    std::shared_ptr<PixelBudget::Lease> lease;
    absl::Duration decode;
  };
  absl::StatusOr<Ready> ready = GuardExceptions(label, rpc, [&]() -> absl::StatusOr<Ready> {
    if (absl::Status s = Refusal(); !s.ok()) return s;
    auto cost = validate(*request, limits_);
    if (!cost.ok()) return cost.status();
    auto servable = repository_->Get<ServableT>(request->model_name());
    if (!servable.ok()) return servable.status();
    auto lease = pixels_.Acquire(cost->pixels);
    if (!lease.ok()) return lease.status();
    const absl::Time decode_start = absl::Now();
    auto images = DecodeImages(request->images());
    if (!images.ok()) return images.status();
    return Ready{*std::move(servable), *std::move(images),
                 std::make_shared<PixelBudget::Lease>(*std::move(lease)), absl::Now() - decode_start};
  });
  if (!ready.ok()) {
    LogInternal(ready.status(), rpc, label);
    run->Reject(ready.status());
    return run;
  }

  const CallOptions options{context.deadline, PriorityFromProto(request->priority())};
  std::shared_ptr<ServableT> model = ready->model;
  run->Start(model, [&, model]() -> absl::StatusOr<std::shared_ptr<PendingCall>> {
    return GuardExceptions(label, rpc, [&] {
      return model->Submit(
          ready->images, request->return_attention_stats(), options,
          [run, request, response, labels = &model->description().labels, fill, metrics = metrics_,
           lease = ready->lease, decode = ready->decode](auto results, ServeTiming timing) {
            timing.decode = decode;
            lease->Release();  // the images and their tensors are no longer needed
            if (!results.ok()) return run->Done(results.status());
            // On a model instance thread: nothing may escape into the batcher.
            absl::Status filled = GuardExceptions(request->model_name(), "the response", [&] {
              response->set_model_name(request->model_name());
              fill(*results, *labels);
              FillTiming(timing, response->mutable_timing());
              return absl::OkStatus();
            });
            if (!filled.ok()) {
              static LogLimiter limiter;
              LogErrorLimited(&limiter, "%s", filled.message());
              return run->Done(filled);
            }
            if (metrics) metrics->RecordQueueWait(request->model_name(), timing.batch.queue);
            run->Done(absl::OkStatus());
          });
    });
  });
  return run;
}

std::shared_ptr<CallHandle> InferenceCalls::Classify(const CallContext& context, const v1::ClassifyRequest* request,
                                                     v1::ClassifyResponse* response, Finish finish) {
  const uint32_t k = request->top_k() == 0 ? kDefaultTopK : request->top_k();
  return ServeVision<ClassifierServable>(
      context, "Classify", request, response, std::move(finish), ValidateClassify,
      [request, response, k](const std::vector<model::Classification>& results,
                             const std::vector<std::string>& labels) {
        for (const model::Classification& result : results) {
          v1::Classification* out = response->add_classifications();
          FillTopClasses(result.probabilities, labels, k, out);
          if (request->return_attention_stats()) FillAttentionStats(result.stats, out->mutable_attention_stats());
        }
      });
}

std::shared_ptr<CallHandle> InferenceCalls::Segment(const CallContext& context, const v1::SegmentRequest* request,
                                                    v1::SegmentResponse* response, Finish finish) {
  return ServeVision<SegmenterServable>(
      context, "Segment", request, response, std::move(finish), ValidateSegment,
      [request, response](const std::vector<model::Segmentation>& results,
                          const std::vector<std::string>& labels) {
        for (const model::Segmentation& result : results) {
          v1::SegmentationMask* mask = response->add_masks();
          FillMask(result, labels, mask);
          if (request->return_attention_stats()) FillAttentionStats(result.stats, mask->mutable_attention_stats());
        }
      });
}

// Generate and Score: check, find the language model, and queue the request at its scheduler.
// `params` validates the request and builds its GenerationParams.
absl::StatusOr<std::unique_ptr<GenerateCall>> InferenceCalls::SubmitToLanguageModel(
    const CallContext& context, const char* rpc, const std::string& model_name,
    const std::function<absl::StatusOr<GenerationParams>()>& params) {
  const std::string label = ModelLabel(model_name);
  auto outcome = std::make_unique<RpcOutcome>(metrics_, label, rpc, context.protocol);
  struct Ready {
    std::shared_ptr<LanguageServable> model;
    std::shared_ptr<GenerationStream> stream;
  };
  absl::StatusOr<Ready> ready = GuardExceptions(label, rpc, [&]() -> absl::StatusOr<Ready> {
    if (absl::Status s = Refusal(); !s.ok()) return s;
    auto p = params();
    if (!p.ok()) return p.status();
    auto servable = repository_->Get<LanguageServable>(model_name);
    if (!servable.ok()) return servable.status();
    p->deadline = context.deadline;
    auto stream = (*servable)->Submit(*p);
    if (!stream.ok()) return stream.status();
    return Ready{*std::move(servable), *std::move(stream)};
  });
  if (!ready.ok()) {
    LogInternal(ready.status(), rpc, label);
    outcome->Record(ready.status());
    return ready.status();
  }
  return std::make_unique<GenerateCall>(std::move(ready->model), std::move(ready->stream), std::move(outcome),
                                        &calls_);
}

absl::StatusOr<std::unique_ptr<GenerateCall>> InferenceCalls::Generate(const CallContext& context,
                                                                       const v1::GenerateRequest& request) {
  return SubmitToLanguageModel(context, "Generate", request.model_name(), [&]() -> absl::StatusOr<GenerationParams> {
    if (absl::Status s = ValidateGenerate(request, limits_); !s.ok()) return s;
    GenerationParams params;
    params.prompt = request.prompt();
    params.max_new_tokens = static_cast<int>(request.max_new_tokens());
    params.sampling.temperature = request.temperature();
    params.sampling.top_k = static_cast<int>(request.top_k());
    params.sampling.top_p = request.top_p();
    params.seed = request.seed();
    params.stop.assign(request.stop().begin(), request.stop().end());
    params.prompt_logprobs = request.prompt_logprobs();
    return params;
  });
}

absl::StatusOr<std::unique_ptr<GenerateCall>> InferenceCalls::ScoreStream(const CallContext& context,
                                                                          const v1::ScoreRequest& request) {
  return SubmitToLanguageModel(context, "Score", request.model_name(), [&]() -> absl::StatusOr<GenerationParams> {
    if (absl::Status s = ValidateScore(request, limits_); !s.ok()) return s;
    GenerationParams params;
    params.prompt = request.text();
    params.score_only = true;
    params.prompt_logprobs = true;
    params.append_eos = !request.no_end_of_sequence();
    return params;
  });
}

std::shared_ptr<CallHandle> InferenceCalls::Score(const CallContext& context, const v1::ScoreRequest* request,
                                                  v1::ScoreResponse* response, Finish finish) {
  auto run = std::make_shared<ScoreRun>(request, response, std::move(finish));
  auto call = ScoreStream(context, *request);
  if (!call.ok()) {
    run->Reject(call.status());
  } else {
    run->Start(*std::move(call));
  }
  return run;
}

absl::StatusOr<std::vector<model::RgbImage>> InferenceCalls::DecodeImages(
    const google::protobuf::RepeatedPtrField<v1::Image>& images) const {
  std::vector<model::RgbImage> out;
  out.reserve(images.size());
  ImageLimits image_limits;
  image_limits.max_pixels = limits_.max_image_pixels;
  for (int i = 0; i < images.size(); ++i) {
    auto image = ImageFromProto(images[i], i, image_limits);
    if (!image.ok()) return image.status();
    out.push_back(*std::move(image));
  }
  return out;
}

}  // namespace elliptical::server
