// The gRPC surface of elliptical.v1.InferenceService on gRPC's callback API: every call is a
// reactor (vision_call.h for Classify and Segment, generate_reactor.h for Generate) that is
// finished from the model's completion, so no thread is held per call and nothing polls. It
// validates requests and converts protos; models, batching and generation live in
// server/serving and server/generation.
#pragma once

#include "elliptical/v1/inference_service.grpc.pb.h"
#include "server/api/call_tracker.h"
#include "server/api/request_limits.h"
#include "server/input/pixel_budget.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/model_repository.h"

namespace elliptical::server {

class InferenceService final : public elliptical::v1::InferenceService::CallbackService {
 public:
  // `metrics` (optional) receives every RPC's outcome.
  InferenceService(const ModelRepository* repository, RequestLimits limits,
                   ServerMetrics* metrics = nullptr)
      : repository_(repository), limits_(limits), metrics_(metrics), pixels_(limits.max_inflight_pixels) {}

  // The inference calls in progress; shutdown drains them (main.cc).
  CallTracker* calls() { return &calls_; }

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModelMetadata(grpc::CallbackServerContext* context,
                                             const v1::GetModelMetadataRequest* request,
                                             v1::GetModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;
  grpc::ServerUnaryReactor* Segment(grpc::CallbackServerContext* context,
                                    const v1::SegmentRequest* request,
                                    v1::SegmentResponse* response) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* context,
                                                           const v1::GenerateRequest* request) override;

 private:
  template <typename ServableT, typename Request, typename Response, typename Validate, typename Fill>
  grpc::ServerUnaryReactor* ServeVision(grpc::CallbackServerContext* context, const char* rpc,
                                        const Request* request, Response* response, Validate validate,
                                        Fill fill);
  // The model label of a request: its name when the repository knows it, else "unknown".
  std::string ModelLabel(const std::string& name) const;
  absl::StatusOr<std::vector<model::RgbImage>> DecodeImages(
      const google::protobuf::RepeatedPtrField<v1::Image>& images) const;
  absl::Status Refusal() const;

  const ModelRepository* const repository_;
  const RequestLimits limits_;
  ServerMetrics* const metrics_;
  PixelBudget pixels_;
  CallTracker calls_;
};

}  // namespace elliptical::server
