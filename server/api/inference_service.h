// The gRPC surface of elliptical.v1.InferenceService: validates requests, turns protos into
// model inputs and model outputs into protos, and streams generated tokens. It holds no model
// logic and no batching: those live in server/serving and server/generation.
#pragma once

#include <cstdint>

#include "elliptical/v1/inference_service.grpc.pb.h"
#include "server/input/image_decoder.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/model_repository.h"

namespace elliptical::server {

struct ServiceLimits {
  int max_images_per_request = 64;
  ImageLimits image;
};

class InferenceService final : public elliptical::v1::InferenceService::Service {
 public:
  // `metrics` (optional) receives every RPC's outcome.
  InferenceService(const ModelRepository* repository, ServiceLimits limits,
                   ServerMetrics* metrics = nullptr)
      : repository_(repository), limits_(limits), metrics_(metrics) {}

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
  grpc::Status DoClassify(grpc::ServerContext* context, const v1::ClassifyRequest* request,
                          v1::ClassifyResponse* response);
  grpc::Status DoSegment(grpc::ServerContext* context, const v1::SegmentRequest* request,
                         v1::SegmentResponse* response);
  grpc::Status DoGenerate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                          grpc::ServerWriter<v1::GenerateResponse>* writer);
  // Records an RPC's outcome (count, duration, rejection reason) and passes its status on.
  grpc::Status Finish(const std::string& model, const char* rpc, absl::Time start, grpc::Status status);
  // The model label of a request: its name when the repository knows it, else "unknown", so
  // clients cannot create series at will.
  std::string ModelLabel(const std::string& name) const;

  absl::StatusOr<std::vector<model::RgbImage>> DecodeImages(
      const google::protobuf::RepeatedPtrField<v1::Image>& images) const;

  const ModelRepository* const repository_;
  const ServiceLimits limits_;
  ServerMetrics* const metrics_;
};

}  // namespace elliptical::server
