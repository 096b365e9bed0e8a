#include "server/api/inference_service.h"

#include "absl/strings/str_cat.h"
#include "server/api/generate_reactor.h"
#include "server/api/grpc_status.h"
#include "server/api/proto_convert.h"
#include "server/api/vision_call.h"
#include "server/serving/language_servable.h"
#include "server/serving/vision_servable.h"

namespace elliptical::server {
namespace {

constexpr int kDefaultTopK = 5;

grpc::Status InvalidArgument(absl::string_view message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(message));
}

grpc::Status NoModelName() {
  return InvalidArgument("model_name is empty; ListModels shows the models served");
}

absl::Time Deadline(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  // No deadline arrives as the largest time_point: keep it infinite rather than overflow.
  if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::FromChrono(deadline);
  }
  return absl::InfiniteFuture();
}

absl::StatusOr<Priority> PriorityFromProto(int priority) {
  switch (priority) {
    case v1::PRIORITY_UNSPECIFIED:
    case v1::PRIORITY_NORMAL: return Priority::kNormal;
    case v1::PRIORITY_LOW: return Priority::kLow;
    case v1::PRIORITY_HIGH: return Priority::kHigh;
    default:
      return absl::InvalidArgumentError(absl::StrCat("priority ", priority, " is not one of the Priority values"));
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
  if (request->model_name().empty()) return Answer(context, InvalidArgument("model_name is empty"));
  auto snapshot = repository_->Describe(request->model_name());
  if (!snapshot.ok()) return Answer(context, ToGrpcStatus(snapshot.status()));
  FillMetadata(*snapshot, response);
  return Answer(context, grpc::Status::OK);
}

// Classify and Segment: validate, decode, submit to the model's servable, and finish the call
// from the servable's callback with `fill(results, labels)` filling the response.
template <typename ServableT, typename Request, typename Response, typename Fill>
grpc::ServerUnaryReactor* InferenceService::ServeVision(grpc::CallbackServerContext* context, const char* rpc,
                                                        const Request* request, Response* response,
                                                        Fill fill) {
  auto* call = new VisionCall(metrics_, ModelLabel(request->model_name()), rpc);
  auto fail = [call](const absl::Status& s) {
    call->Reject(s);
    return call;
  };
  if (request->model_name().empty()) return fail(absl::InvalidArgumentError(NoModelName().error_message()));
  auto priority = PriorityFromProto(request->priority());
  if (!priority.ok()) return fail(priority.status());
  auto images = DecodeImages(request->images());
  if (!images.ok()) return fail(images.status());
  auto servable = repository_->Get<ServableT>(request->model_name());
  if (!servable.ok()) return fail(servable.status());

  const CallOptions options{Deadline(context), *priority};
  std::shared_ptr<ServableT> model = *servable;
  call->Start(model, [&, model]() {
    return model->Submit(
        *images, request->return_attention_stats(), options,
        [call, request, response, labels = &model->description().labels, fill, metrics = metrics_](
            auto results, const ServeTiming& timing) {
          if (!results.ok()) return call->Done(ToGrpcStatus(results.status()));
          response->set_model_name(request->model_name());
          fill(*results, *labels);
          FillTiming(timing, response->mutable_timing());
          if (metrics) metrics->RecordQueueWait(request->model_name(), timing.batch.queue);
          call->Done(grpc::Status::OK);
        });
  });
  return call;
}

grpc::ServerUnaryReactor* InferenceService::Classify(grpc::CallbackServerContext* context,
                                                     const v1::ClassifyRequest* request,
                                                     v1::ClassifyResponse* response) {
  const uint32_t k = request->top_k() == 0 ? kDefaultTopK : request->top_k();
  return ServeVision<ClassifierServable>(
      context, "Classify", request, response,
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
      context, "Segment", request, response,
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
  auto* reactor = new GenerateReactor(metrics_, ModelLabel(request->model_name()));
  if (request->model_name().empty()) {
    reactor->Reject(NoModelName());
    return reactor;
  }
  auto servable = repository_->Get<LanguageServable>(request->model_name());
  if (!servable.ok()) {
    reactor->Reject(ToGrpcStatus(servable.status()));
    return reactor;
  }
  GenerationParams params;
  params.prompt = request->prompt();
  params.max_new_tokens = static_cast<int>(std::min<uint32_t>(request->max_new_tokens(), 1u << 30));
  params.sampling.temperature = request->temperature();
  params.sampling.top_k = static_cast<int>(std::min<uint32_t>(request->top_k(), 1u << 30));
  params.sampling.top_p = request->top_p();
  params.seed = request->seed();
  params.stop.assign(request->stop().begin(), request->stop().end());
  params.deadline = Deadline(context);
  auto stream = (*servable)->Submit(params);
  if (!stream.ok()) {
    reactor->Reject(ToGrpcStatus(stream.status()));
    return reactor;
  }
  reactor->Start(*servable, *std::move(stream));
  return reactor;
}

absl::StatusOr<std::vector<model::RgbImage>> InferenceService::DecodeImages(
    const google::protobuf::RepeatedPtrField<v1::Image>& images) const {
  if (images.empty()) return absl::InvalidArgumentError("the request holds no images");
  if (images.size() > limits_.max_images_per_request) {
    return absl::InvalidArgumentError(absl::StrCat("the request holds ", images.size(),
                                                   " images; the limit is ",
                                                   limits_.max_images_per_request, " per request"));
  }
  std::vector<model::RgbImage> out;
  out.reserve(images.size());
  for (int i = 0; i < images.size(); ++i) {
    auto image = ImageFromProto(images[i], i, limits_.image);
    if (!image.ok()) return image.status();
    out.push_back(*std::move(image));
  }
  return out;
}

}  // namespace elliptical::server
