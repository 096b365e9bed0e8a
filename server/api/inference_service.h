// The gRPC surface of elliptical.v1.InferenceService: validates requests, turns protos into
// model inputs and model outputs into protos, and streams generated tokens. It holds no model
// logic and no batching: those live in server/serving and server/generation.
#pragma once

#include <cstdint>

#include "elliptical/v1/inference_service.grpc.pb.h"
#include "server/input/image_decoder.h"
#include "server/repository/model_repository.h"

namespace elliptical::server {

struct ServiceLimits {
  int max_images_per_request = 64;
  ImageLimits image;
};

class InferenceService final : public elliptical::v1::InferenceService::Service {
 public:
  InferenceService(const ModelRepository* repository, ServiceLimits limits)
      : repository_(repository), limits_(limits) {}

  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;
  grpc::Status GetModelMetadata(grpc::ServerContext* context,
                                const v1::GetModelMetadataRequest* request,
                                v1::GetModelMetadataResponse* response) override;
  grpc::Status Classify(grpc::ServerContext* context, const v1::ClassifyRequest* request,
                        v1::ClassifyResponse* response) override;
  grpc::Status Segment(grpc::ServerContext* context, const v1::SegmentRequest* request,
                       v1::SegmentResponse* response) override;
  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;

 private:
  absl::StatusOr<std::vector<model::RgbImage>> DecodeImages(
      const google::protobuf::RepeatedPtrField<v1::Image>& images) const;

  const ModelRepository* const repository_;
  const ServiceLimits limits_;
};

}  // namespace elliptical::server
