#include "server/api/inference_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/api/grpc_status.h"
#include "server/api/proto_convert.h"

namespace elliptical::server {
namespace {

constexpr int kDefaultTopK = 5;

grpc::Status InvalidArgument(absl::string_view message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(message));
}

// The call's deadline and cancellation, as the serving layer sees them.
CallContext Call(grpc::ServerContext* context) {
  CallContext call;
  const auto deadline = context->deadline();
  // No deadline arrives as the largest time_point: keep it infinite rather than overflow.
  if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    call.deadline = absl::FromChrono(deadline);
  }
  call.cancelled = [context] { return context->IsCancelled(); };
  return call;
}

}  // namespace

grpc::Status InferenceService::ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                                          v1::ListModelsResponse* response) {
  for (const ModelSnapshot& snapshot : repository_->List()) {
    v1::ModelSummary* summary = response->add_models();
    summary->set_name(snapshot.name);
    summary->set_family(FamilyToProto(snapshot.family));
    FillModelStatus(snapshot, summary->mutable_status());
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::GetModelMetadata(grpc::ServerContext*,
                                                const v1::GetModelMetadataRequest* request,
                                                v1::GetModelMetadataResponse* response) {
  if (request->model_name().empty()) return InvalidArgument("model_name is empty");
  auto snapshot = repository_->Describe(request->model_name());
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  FillMetadata(*snapshot, response);
  return grpc::Status::OK;
}

std::string InferenceService::ModelLabel(const std::string& name) const {
  return repository_->Contains(name) ? name : "unknown";
}

grpc::Status InferenceService::Finish(const std::string& model, const char* rpc, absl::Time start,
                                      grpc::Status status) {
  if (!metrics_) return status;
  const std::string label = ModelLabel(model);
  metrics_->AddInFlight(label, rpc, -1);
  metrics_->RecordRequest(label, rpc, GrpcCodeName(status.error_code()), absl::Now() - start);
  switch (status.error_code()) {
    case grpc::StatusCode::RESOURCE_EXHAUSTED: metrics_->RecordRejection(label, "queue_full"); break;
    case grpc::StatusCode::DEADLINE_EXCEEDED: metrics_->RecordRejection(label, "deadline"); break;
    case grpc::StatusCode::CANCELLED: metrics_->RecordRejection(label, "cancelled"); break;
    case grpc::StatusCode::UNAVAILABLE: metrics_->RecordRejection(label, "unavailable"); break;
    default: break;
  }
  return status;
}

grpc::Status InferenceService::Classify(grpc::ServerContext* context, const v1::ClassifyRequest* request,
                                        v1::ClassifyResponse* response) {
  const absl::Time start = absl::Now();
  if (metrics_) metrics_->AddInFlight(ModelLabel(request->model_name()), "Classify", 1);
  return Finish(request->model_name(), "Classify", start, DoClassify(context, request, response));
}

grpc::Status InferenceService::Segment(grpc::ServerContext* context, const v1::SegmentRequest* request,
                                       v1::SegmentResponse* response) {
  const absl::Time start = absl::Now();
  if (metrics_) metrics_->AddInFlight(ModelLabel(request->model_name()), "Segment", 1);
  return Finish(request->model_name(), "Segment", start, DoSegment(context, request, response));
}

grpc::Status InferenceService::Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                                        grpc::ServerWriter<v1::GenerateResponse>* writer) {
  const absl::Time start = absl::Now();
  if (metrics_) metrics_->AddInFlight(ModelLabel(request->model_name()), "Generate", 1);
  return Finish(request->model_name(), "Generate", start, DoGenerate(context, request, writer));
}

grpc::Status InferenceService::DoClassify(grpc::ServerContext* context, const v1::ClassifyRequest* request,
                                          v1::ClassifyResponse* response) {
  if (request->model_name().empty()) {
    return InvalidArgument("model_name is empty; ListModels shows the models served");
  }
  auto images = DecodeImages(request->images());
  if (!images.ok()) return ToGrpcStatus(images.status());
  auto classifier = repository_->GetClassifier(request->model_name());
  if (!classifier.ok()) return ToGrpcStatus(classifier.status());

  ServeTiming timing;
  auto results = (*classifier)->Run(*images, request->return_attention_stats(), Call(context), &timing);
  if (!results.ok()) return ToGrpcStatus(results.status());

  const uint32_t k = request->top_k() == 0 ? kDefaultTopK : request->top_k();
  response->set_model_name(request->model_name());
  for (const model::Classification& result : *results) {
    v1::Classification* out = response->add_classifications();
    FillTopClasses(result.probabilities, (*classifier)->description().labels, k, out);
    if (request->return_attention_stats()) {
      FillAttentionStats(result.stats, out->mutable_attention_stats());
    }
  }
  FillTiming(timing, response->mutable_timing());
  if (metrics_) metrics_->RecordQueueWait(request->model_name(), timing.batch.queue);
  return grpc::Status::OK;
}

grpc::Status InferenceService::DoSegment(grpc::ServerContext* context, const v1::SegmentRequest* request,
                                         v1::SegmentResponse* response) {
  if (request->model_name().empty()) {
    return InvalidArgument("model_name is empty; ListModels shows the models served");
  }
  auto images = DecodeImages(request->images());
  if (!images.ok()) return ToGrpcStatus(images.status());
  auto segmenter = repository_->GetSegmenter(request->model_name());
  if (!segmenter.ok()) return ToGrpcStatus(segmenter.status());

  ServeTiming timing;
  auto results = (*segmenter)->Run(*images, request->return_attention_stats(), Call(context), &timing);
  if (!results.ok()) return ToGrpcStatus(results.status());
  response->set_model_name(request->model_name());
  for (const model::Segmentation& result : *results) {
    v1::SegmentationMask* mask = response->add_masks();
    FillMask(result, (*segmenter)->description().labels, mask);
    if (request->return_attention_stats()) FillAttentionStats(result.stats, mask->mutable_attention_stats());
  }
  FillTiming(timing, response->mutable_timing());
  if (metrics_) metrics_->RecordQueueWait(request->model_name(), timing.batch.queue);
  return grpc::Status::OK;
}

grpc::Status InferenceService::DoGenerate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                                          grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (request->model_name().empty()) {
    return InvalidArgument("model_name is empty; ListModels shows the models served");
  }
  auto generator = repository_->GetGenerator(request->model_name());
  if (!generator.ok()) return ToGrpcStatus(generator.status());
  GenerationParams params;
  params.prompt = request->prompt();
  params.max_new_tokens = static_cast<int>(std::min<uint32_t>(request->max_new_tokens(), 1u << 30));
  params.sampling.temperature = request->temperature();
  params.sampling.top_k = static_cast<int>(std::min<uint32_t>(request->top_k(), 1u << 30));
  params.sampling.top_p = request->top_p();
  params.seed = request->seed();
  params.stop.assign(request->stop().begin(), request->stop().end());
  params.deadline = Call(context).deadline;
  auto stream = (*generator)->Submit(params);
  if (!stream.ok()) return ToGrpcStatus(stream.status());

  for (;;) {
    GenerationStream::Event event;
    if (!(*stream)->Next(absl::Milliseconds(50), &event)) {
      if (context->IsCancelled()) {
        (*stream)->Cancel();  // frees the sequence's slot at the scheduler's next step
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the request");
      }
      continue;
    }
    v1::GenerateResponse message;
    if (event.has_token || !event.text.empty()) {
      v1::Token* token = message.mutable_token();
      token->set_id(static_cast<uint32_t>(event.token_id));
      token->set_text(event.text);
      token->set_logprob(event.logprob);
    }
    if (event.final) {
      if (!event.status.ok()) return ToGrpcStatus(event.status);
      FillSummary(event, message.mutable_summary());
      writer->Write(message);
      return grpc::Status::OK;
    }
    if (!writer->Write(message)) {
      (*stream)->Cancel();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the stream to the client broke");
    }
  }
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
