#include "server/core/inference_calls.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/exception_guard.h"
#include "server/core/request_validation.h"
#include "server/input/image_decoder.h"
#include "server/log.h"
#include "server/serving/language_servable.h"
#include "server/serving/vision_servable.h"

namespace elliptical::server {
namespace {

void LogInternal(const absl::Status& status, const char* rpc, const std::string& label) {
  if (status.code() != absl::StatusCode::kInternal) return;
  static LogLimiter limiter;
  LogErrorLimited(&limiter, "%s %s: %s", rpc, label, status.message());
}

// One Classify or Segment call from its arrival to its single finish. The servable's callback
// may run before Start has returned (a batch can complete on an instance thread at once), and
// the client may cancel at any point: the three are ordered here.
template <typename Result>
class VisionRun final : public CallHandle {
 public:
  VisionRun(CallTracker* calls, ServerMetrics* metrics, std::string label, const char* rpc, Protocol protocol,
            InferenceCalls::Done<Result> done)
      : scope_(calls), outcome_(metrics, std::move(label), rpc, protocol), done_(std::move(done)) {}

  // Finishes the call with `error` before anything was submitted.
  void Reject(const absl::Status& error) { FinishNow(error); }

  // Submits through `submit`, which schedules the work and returns its handle, or an error
  // that finishes the call now. `keep` holds the servable until the call is finished.
  void Start(std::shared_ptr<const void> keep,
             const std::function<absl::StatusOr<std::shared_ptr<PendingCall>>()>& submit) {
    auto pending = submit();
    std::optional<absl::StatusOr<Result>> finish;
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
      FinishNow(*std::move(finish));
    } else if (cancel) {
      cancel->Cancel();
    }
  }

  // The servable's callback: exactly once, possibly before Start has returned (then Start
  // finishes the call).
  void Done(absl::StatusOr<Result> result) {
    {
      absl::MutexLock lock(&mu_);
      if (!started_) {
        deferred_ = std::move(result);
        return;
      }
    }
    FinishNow(std::move(result));
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
  void FinishNow(absl::StatusOr<Result> result) {
    InferenceCalls::Done<Result> done;
    std::shared_ptr<PendingCall> pending;
    std::shared_ptr<const void> keep;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      done = std::move(done_);
      // The pending call's callback holds this run: dropping it here ends the cycle.
      pending = std::move(pending_);
      keep = std::move(keep_);
    }
    outcome_.Record(result.status());
    done(std::move(result));
  }

  CallTracker::Scope scope_;
  RpcOutcome outcome_;
  absl::Mutex mu_;
  InferenceCalls::Done<Result> done_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const void> keep_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<PendingCall> pending_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::StatusOr<Result>> deferred_ ABSL_GUARDED_BY(mu_);
};

// One Score call: the events of its scoring stream (InferenceCalls::ScoreStream) gathered into
// the result. The run keeps itself alive until the final event; the stream's listener holds
// it weakly, so nothing is left behind once the call has finished.
class ScoreRun final : public CallHandle, public std::enable_shared_from_this<ScoreRun> {
 public:
  ScoreRun(std::string model_name, InferenceCalls::Done<ScoreResult> done) : done_(std::move(done)) {
    result_.model_name = std::move(model_name);
  }

  void Start(std::unique_ptr<GenerateCall> call) {
    call_ = std::move(call);
    self_ = shared_from_this();
    std::weak_ptr<ScoreRun> weak = self_;
    // The listener's first call picks up events already queued.
    call_->SetListener([weak] {
      if (std::shared_ptr<ScoreRun> run = weak.lock()) run->OnEvents();
    });
  }

  // Finishes the call with `error` (ScoreStream refused it and recorded why).
  void Reject(const absl::Status& error) {
    done_finished_ = true;
    InferenceCalls::Done<ScoreResult> done = std::move(done_);
    done(error);
  }

  void Cancel() override {
    if (call_) call_->Cancel();
  }

 private:
  // On the scheduler's thread (or the caller's for the listener's first call); the stream's
  // listener lock orders the calls.
  void OnEvents() {
    std::deque<GenerationEvent> events;
    call_->Take(&events);
    for (GenerationEvent& e : events) {
      if (done_finished_) return;
      if (auto* scores = std::get_if<PromptScoresEvent>(&e)) {
        for (GenerationStream::ScoredToken& t : scores->tokens) result_.tokens.push_back(std::move(t));
      }
      if (!IsFinal(e)) continue;
      done_finished_ = true;
      absl::StatusOr<ScoreResult> outcome;
      if (auto* failed = std::get_if<FailedEvent>(&e)) {
        outcome = failed->status;
      } else {
        const FinishedEvent& f = std::get<FinishedEvent>(e);
        result_.total_logprob = f.scored_logprob_sum;
        result_.scored_tokens = f.scored_tokens;
        result_.perplexity = GenerationStream::Perplexity(f.scored_logprob_sum, f.scored_tokens);
        // The scheduler reports the whole time to the scores; the queue and compute split is
        // not kept per request.
        result_.compute = f.total;
        outcome = std::move(result_);
      }
      call_->Finish(outcome.status());
      std::shared_ptr<ScoreRun> keep = std::move(self_);  // gone once this returns
      InferenceCalls::Done<ScoreResult> done = std::move(done_);
      done(std::move(outcome));
      return;
    }
  }

  InferenceCalls::Done<ScoreResult> done_;
  ScoreResult result_;
  std::unique_ptr<GenerateCall> call_;
  std::shared_ptr<ScoreRun> self_;
  bool done_finished_ = false;  // only touched under the stream's listener lock
};

}  // namespace

std::string InferenceCalls::ModelLabel(const std::string& name) const {
  return repository_->Contains(name) ? name : "unknown";
}

absl::Status InferenceCalls::Refusal() const {
  if (!calls_.draining()) return absl::OkStatus();
  return absl::UnavailableError("the server is shutting down; retry on another replica");
}

absl::StatusOr<ModelSnapshot> InferenceCalls::Describe(const std::string& model_name,
                                                       absl::string_view version) const {
  if (absl::Status s = ValidateModelName(model_name, limits_); !s.ok()) return s;
  return repository_->Describe(model_name, version);
}

// Classify and Segment: validate, lease the pixels, decode, submit to the model's servable, and
// finish from the servable's callback with `fill(results, &result)` filling the result. An
// exception anywhere fails the call with INTERNAL.
template <typename ServableT, typename Result, typename Fill>
std::shared_ptr<CallHandle> InferenceCalls::ServeVision(const CallContext& context, const char* rpc,
                                                        VisionRequest request, Done<Result> done, Fill fill) {
  const std::string label = ModelLabel(request.model_name);
  auto run = std::make_shared<VisionRun<Result>>(&calls_, metrics_, label, rpc, context.protocol, std::move(done));
  struct Ready {
    std::shared_ptr<ServableT> model;
    int64_t version = 0;
    std::vector<VisionInput> images;
    std::shared_ptr<PixelBudget::Lease> lease;
    absl::Duration decode;
  };
  absl::StatusOr<Ready> ready = GuardExceptions(label, rpc, [&]() -> absl::StatusOr<Ready> {
    if (absl::Status s = Refusal(); !s.ok()) return s;
    auto cost = ValidateVision(request, limits_);
    if (!cost.ok()) return cost.status();
    int64_t version = 0;
    auto servable = repository_->Get<ServableT>(request.model_name, request.model_version, &version);
    if (!servable.ok()) return servable.status();
    auto lease = pixels_.Acquire(cost->pixels);
    if (!lease.ok()) return lease.status();
    const absl::Time decode_start = absl::Now();
    auto images = DecodeImages(request.images);
    if (!images.ok()) return images.status();
    return Ready{*std::move(servable), version, *std::move(images),
                 std::make_shared<PixelBudget::Lease>(*std::move(lease)), absl::Now() - decode_start};
  });
  if (!ready.ok()) {
    LogInternal(ready.status(), rpc, label);
    run->Reject(ready.status());
    return run;
  }

  const CallOptions options{context.deadline, request.priority};
  std::shared_ptr<ServableT> model = ready->model;
  // The labels live in the model's description: shared with the model, they outlive the call.
  Labels labels(model, &model->description().labels);
  run->Start(model, [&, model]() -> absl::StatusOr<std::shared_ptr<PendingCall>> {
    return GuardExceptions(label, rpc, [&] {
      return model->Submit(
          ready->images, request.attention_stats, options,
          [run, name = request.model_name, version = ready->version, labels, fill, metrics = metrics_,
           lease = ready->lease,
           decode = ready->decode](auto results, ServeTiming timing) {
            timing.decode = decode;
            lease->Release();  // the images and their tensors are no longer needed
            if (!results.ok()) return run->Done(results.status());
            Result result;
            result.model_name = name;
            result.model_version = version;
            result.labels = labels;
            result.timing = timing;
            fill(*std::move(results), &result);
            if (metrics) metrics->RecordServeTiming(name, timing.batch.queue, timing.preprocess, timing.batch.compute);
            run->Done(std::move(result));
          });
    });
  });
  return run;
}

std::shared_ptr<CallHandle> InferenceCalls::Classify(const CallContext& context, VisionRequest request,
                                                     Done<ClassifyResult> done) {
  return ServeVision<ClassifierServable, ClassifyResult>(
      context, "Classify", std::move(request), std::move(done),
      [](std::vector<model::Classification> results, ClassifyResult* out) {
        out->classifications = std::move(results);
      });
}

std::shared_ptr<CallHandle> InferenceCalls::Segment(const CallContext& context, VisionRequest request,
                                                    Done<SegmentResult> done) {
  return ServeVision<SegmenterServable, SegmentResult>(
      context, "Segment", std::move(request), std::move(done),
      [](std::vector<model::Segmentation> results, SegmentResult* out) { out->masks = std::move(results); });
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
                                                                       const GenerateRequest& request) {
  return SubmitToLanguageModel(context, "Generate", request.model_name, [&]() -> absl::StatusOr<GenerationParams> {
    if (absl::Status s = ValidateGenerate(request, limits_); !s.ok()) return s;
    GenerationParams params;
    params.prompt = request.prompt;
    params.max_new_tokens = static_cast<int>(request.max_new_tokens);
    params.sampling = request.sampling;
    params.seed = request.seed;
    params.stop = request.stop;
    params.prompt_logprobs = request.prompt_logprobs;
    return params;
  });
}

absl::StatusOr<std::unique_ptr<GenerateCall>> InferenceCalls::ScoreStream(const CallContext& context,
                                                                          const ScoreRequest& request) {
  return SubmitToLanguageModel(context, "Score", request.model_name, [&]() -> absl::StatusOr<GenerationParams> {
    if (absl::Status s = ValidateScore(request, limits_); !s.ok()) return s;
    GenerationParams params;
    params.prompt = request.text;
    params.score_only = true;
    params.prompt_logprobs = true;
    params.append_eos = request.append_eos;
    return params;
  });
}

std::shared_ptr<CallHandle> InferenceCalls::Score(const CallContext& context, ScoreRequest request,
                                                  Done<ScoreResult> done) {
  auto run = std::make_shared<ScoreRun>(request.model_name, std::move(done));
  auto call = ScoreStream(context, request);
  if (!call.ok()) {
    run->Reject(call.status());
  } else {
    run->Start(*std::move(call));
  }
  return run;
}

absl::StatusOr<std::vector<VisionInput>> InferenceCalls::DecodeImages(const std::vector<ImageInput>& images) const {
  std::vector<VisionInput> out;
  out.reserve(images.size());
  ImageLimits image_limits;
  image_limits.max_pixels = limits_.max_image_pixels;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageInput& image = images[i];
    if (image.kind == ImageInput::Kind::kTensor) {
      // ValidateVision has bounded its sides by max_image_pixels: they fit an int.
      model::PixelTensor tensor;
      tensor.width = static_cast<int>(image.width);
      tensor.height = static_cast<int>(image.height);
      tensor.type = image.tensor_type;
      tensor.data = image.tensor;
      out.emplace_back(tensor);
      continue;
    }
    absl::StatusOr<model::RgbImage> decoded =
        image.kind == ImageInput::Kind::kEncoded
            ? DecodeImage(absl::string_view(image.encoded.data(), image.encoded.size()), image_limits)
            : ImageFromPixels(image.width, image.height, image.channels,
                              absl::string_view(image.pixels.data(), image.pixels.size()), image_limits);
    if (!decoded.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("images[", i, "]: ", decoded.status().message()));
    }
    out.push_back(*std::move(decoded));
  }
  return out;
}

bool GenerateCall::Take(std::deque<GenerationEvent>* out) {
  records_.clear();
  if (!stream_->Take(&records_)) return false;
  const size_t before = out->size();
  for (GenerationStream::Event& e : records_) AppendEvents(std::move(e), out);
  records_.clear();
  return out->size() > before;
}

}  // namespace elliptical::server
