#include "server/api/inference_service.h"

#include "absl/strings/str_cat.h"
#include "common/exception_guard.h"
#include "server/api/generate_reactor.h"
#include "server/api/grpc_status.h"
#include "server/api/proto_convert.h"
#include "server/api/request_validation.h"
#include "server/api/vision_call.h"
#include "server/log.h"
#include "server/serving/language_servable.h"
#include "server/serving/vision_servable.h"

namespace elliptical::server {
namespace {

constexpr int kDefaultTopK = 5;

absl::Time Deadline(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  // No deadline arrives as the largest time_point: keep it infinite rather than overflow.
  if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::FromChrono(deadline);
  }
  return absl::InfiniteFuture();
}

// The request was validated: every value is one of the enum's.
Priority PriorityFromProto(int priority) {
  switch (priority) {
    case v1::PRIORITY_LOW: return Priority::kLow;
    case v1::PRIORITY_HIGH: return Priority::kHigh;
    default: return Priority::kNormal;
  }
}

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

std::string InferenceService::ModelLabel(const std::string& name) const {
  return repository_->Contains(name) ? name : "unknown";
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest*,
                                                       v1::ListModelsResponse* response) {
  for (const ModelSnapshot& snapshot : repository_->List()) {
    v1::ModelSummary* summary = response->add_models();
    summary->set_name(snapshot.name);
    summary->set_family(FamilyToProto(snapshot.family));
    FillModelStatus(snapshot, summary->mutable_status());
  }
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::GetModelMetadata(grpc::CallbackServerContext* context,
                                                             const v1::GetModelMetadataRequest* request,
                                                             v1::GetModelMetadataResponse* response) {
  if (absl::Status s = ValidateModelName(request->model_name(), limits_); !s.ok()) {
    return Answer(context, ToGrpcStatus(s));
  }
  auto snapshot = repository_->Describe(request->model_name());
  if (!snapshot.ok()) return Answer(context, ToGrpcStatus(snapshot.status()));
  FillMetadata(*snapshot, response);
  return Answer(context, grpc::Status::OK);
}

absl::Status InferenceService::Refusal() const {
  if (!calls_.draining()) return absl::OkStatus();
  return absl::UnavailableError("the server is shutting down; retry on another replica");
}

// Classify and Segment: validate, lease the pixels, decode, submit to the model's servable, and
// finish the call from the servable's callback with `fill(results, labels)` filling the
// response. An exception anywhere before the submission fails the call with INTERNAL.
template <typename ServableT, typename Request, typename Response, typename Validate, typename Fill>
grpc::ServerUnaryReactor* InferenceService::ServeVision(grpc::CallbackServerContext* context, const char* rpc,
                                                        const Request* request, Response* response,
                                                        Validate validate, Fill fill) {
  const std::string label = ModelLabel(request->model_name());
  auto* call = new VisionCall(metrics_, label, rpc, &calls_);
  struct Ready {
    std::shared_ptr<ServableT> model;
    std::vector<model::RgbImage> images;
    std::shared_ptr<PixelBudget::Lease> lease;
  };
  absl::StatusOr<Ready> ready = GuardExceptions(label, rpc, [&]() -> absl::StatusOr<Ready> {
    if (absl::Status s = Refusal(); !s.ok()) return s;
    auto cost = validate(*request, limits_);
    if (!cost.ok()) return cost.status();
    auto servable = repository_->Get<ServableT>(request->model_name());
    if (!servable.ok()) return servable.status();
    auto lease = pixels_.Acquire(cost->pixels);
    if (!lease.ok()) return lease.status();
    auto images = DecodeImages(request->images());
    if (!images.ok()) return images.status();
    return Ready{*std::move(servable), *std::move(images),
                 std::make_shared<PixelBudget::Lease>(*std::move(lease))};
  });
  if (!ready.ok()) {
    if (ready.status().code() == absl::StatusCode::kInternal) {
      static LogLimiter limiter;
      LogErrorLimited(&limiter, "%s %s: %s", rpc, label, ready.status().message());
    }
    call->Reject(ready.status());
    return call;
  }

  const CallOptions options{Deadline(context), PriorityFromProto(request->priority())};
  std::shared_ptr<ServableT> model = ready->model;
  call->Start(model, [&, model]() -> absl::StatusOr<std::shared_ptr<PendingCall>> {
    return GuardExceptions(label, rpc, [&] {
      return model->Submit(
          ready->images, request->return_attention_stats(), options,
          [call, request, response, labels = &model->description().labels, fill, metrics = metrics_,
           lease = ready->lease](auto results, const ServeTiming& timing) {
            lease->Release();  // the images and their tensors are no longer needed
            if (!results.ok()) return call->Done(ToGrpcStatus(results.status()));
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
              return call->Done(ToGrpcStatus(filled));
            }
            if (metrics) metrics->RecordQueueWait(request->model_name(), timing.batch.queue);
            call->Done(grpc::Status::OK);
          });
    });
  });
  return call;
}

grpc::ServerUnaryReactor* InferenceService::Classify(grpc::CallbackServerContext* context,
                                                     const v1::ClassifyRequest* request,
                                                     v1::ClassifyResponse* response) {
  const uint32_t k = request->top_k() == 0 ? kDefaultTopK : request->top_k();
  return ServeVision<ClassifierServable>(
      context, "Classify", request, response, ValidateClassify,
      [request, response, k](const std::vector<model::Classification>& results,
                             const std::vector<std::string>& labels) {
        for (const model::Classification& result : results) {
          v1::Classification* out = response->add_classifications();
          FillTopClasses(result.probabilities, labels, k, out);
          if (request->return_attention_stats()) FillAttentionStats(result.stats, out->mutable_attention_stats());
        }
      });
}

grpc::ServerUnaryReactor* InferenceService::Segment(grpc::CallbackServerContext* context,
                                                    const v1::SegmentRequest* request,
                                                    v1::SegmentResponse* response) {
  return ServeVision<SegmenterServable>(
      context, "Segment", request, response, ValidateSegment,
      [request, response](const std::vector<model::Segmentation>& results,
                          const std::vector<std::string>& labels) {
        for (const model::Segmentation& result : results) {
          v1::SegmentationMask* mask = response->add_masks();
          FillMask(result, labels, mask);
          if (request->return_attention_stats()) FillAttentionStats(result.stats, mask->mutable_attention_stats());
        }
      });
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  const std::string label = ModelLabel(request->model_name());
  auto* reactor = new GenerateReactor(metrics_, label, &calls_);
  struct Ready {
    std::shared_ptr<LanguageServable> model;
    std::shared_ptr<GenerationStream> stream;
  };
  absl::StatusOr<Ready> ready = GuardExceptions(label, "Generate", [&]() -> absl::StatusOr<Ready> {
    if (absl::Status s = Refusal(); !s.ok()) return s;
    if (absl::Status s = ValidateGenerate(*request, limits_); !s.ok()) return s;
    auto servable = repository_->Get<LanguageServable>(request->model_name());
    if (!servable.ok()) return servable.status();
    GenerationParams params;
    params.prompt = request->prompt();
    params.max_new_tokens = static_cast<int>(request->max_new_tokens());
    params.sampling.temperature = request->temperature();
    params.sampling.top_k = static_cast<int>(request->top_k());
    params.sampling.top_p = request->top_p();
    params.seed = request->seed();
    params.stop.assign(request->stop().begin(), request->stop().end());
    params.deadline = Deadline(context);
    auto stream = (*servable)->Submit(params);
    if (!stream.ok()) return stream.status();
    return Ready{*std::move(servable), *std::move(stream)};
  });
  if (!ready.ok()) {
    if (ready.status().code() == absl::StatusCode::kInternal) {
      static LogLimiter limiter;
      LogErrorLimited(&limiter, "Generate %s: %s", label, ready.status().message());
    }
    reactor->Reject(ToGrpcStatus(ready.status()));
    return reactor;
  }
  reactor->Start(ready->model, std::move(ready->stream));
  return reactor;
}

absl::StatusOr<std::vector<model::RgbImage>> InferenceService::DecodeImages(
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
