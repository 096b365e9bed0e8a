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

uint64_t MicrosSince(absl::Time start) {
  return static_cast<uint64_t>(absl::ToInt64Microseconds(absl::Now() - start));
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

grpc::Status InferenceService::Classify(grpc::ServerContext*, const v1::ClassifyRequest* request,
                                        v1::ClassifyResponse* response) {
  if (request->model_name().empty()) {
    return InvalidArgument("model_name is empty; ListModels shows the models served");
  }
  if (request->images_size() == 0) return InvalidArgument("the request holds no images");
  if (request->images_size() > limits_.max_images_per_request) {
    return InvalidArgument(absl::StrCat("the request holds ", request->images_size(),
                                        " images; the limit is ", limits_.max_images_per_request,
                                        " per request"));
  }
  auto classifier = repository_->GetClassifier(request->model_name());
  if (!classifier.ok()) return ToGrpcStatus(classifier.status());

  const absl::Time preprocess_start = absl::Now();
  std::vector<model::RgbImage> images;
  images.reserve(request->images_size());
  for (int i = 0; i < request->images_size(); ++i) {
    auto image = ImageFromProto(request->images(i), i, limits_.image);
    if (!image.ok()) return ToGrpcStatus(image.status());
    images.push_back(*std::move(image));
  }
  const uint64_t preprocess_us = MicrosSince(preprocess_start);

  const absl::Time compute_start = absl::Now();
  auto results = (*classifier)->Classify(images, request->return_attention_stats());
  if (!results.ok()) return ToGrpcStatus(results.status());
  const uint64_t compute_us = MicrosSince(compute_start);

  const int k = request->top_k() == 0 ? kDefaultTopK : static_cast<int>(request->top_k());
  response->set_model_name(request->model_name());
  for (const model::Classification& result : *results) {
    v1::Classification* out = response->add_classifications();
    FillTopClasses(result.probabilities, (*classifier)->description().labels, k, out);
    if (request->return_attention_stats()) {
      FillAttentionStats(result.stats, out->mutable_attention_stats());
    }
  }
  v1::ServerTiming* timing = response->mutable_timing();
  timing->set_preprocess_us(preprocess_us);
  timing->set_compute_us(compute_us);
  timing->set_batch_size(static_cast<uint32_t>(images.size()));
  return grpc::Status::OK;
}

grpc::Status InferenceService::Segment(grpc::ServerContext*, const v1::SegmentRequest*,
                                       v1::SegmentResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "Segment is not served by this version of the server");
}

grpc::Status InferenceService::Generate(grpc::ServerContext*, const v1::GenerateRequest*,
                                        grpc::ServerWriter<v1::GenerateResponse>*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "Generate is not served by this version of the server");
}

}  // namespace elliptical::server
