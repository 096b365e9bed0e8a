// The gRPC surface of elliptical.v1.InferenceService on gRPC's callback API. Every call is a
// reactor (unary_call.h for Classify, Segment and Score, generate_reactor.h for Generate) that is
// finished from the model's completion, so no thread is held per call and nothing polls. The
// serving itself (limits, budgets, servables, metrics) is InferenceCalls', shared with the
// other protocols; this class only moves messages between gRPC and it. The repository RPCs go to
// RepositoryCalls the same way (a load or unload finishes from its thread once it is over; who
// may call them is checked by the port's auth processor before they run).
#pragma once

#include "elliptical/v1/inference_service.grpc.pb.h"
#include "server/core/inference_calls.h"
#include "server/core/repository_calls.h"

namespace elliptical::server {

class InferenceService final : public elliptical::v1::InferenceService::CallbackService {
 public:
  // Without `repository`, the repository RPCs answer UNIMPLEMENTED.
  explicit InferenceService(InferenceCalls* calls, RepositoryCalls* repository = nullptr)
      : calls_(calls), repository_(repository) {}

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModelMetadata(grpc::CallbackServerContext* context,
                                             const v1::GetModelMetadataRequest* request,
                                             v1::GetModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const v1::RepositoryIndexRequest* request,
                                            v1::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context, const v1::LoadModelRequest* request,
                                      v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context, const v1::UnloadModelRequest* request,
                                        v1::UnloadModelResponse* response) override;
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;
  grpc::ServerUnaryReactor* Segment(grpc::CallbackServerContext* context,
                                    const v1::SegmentRequest* request,
                                    v1::SegmentResponse* response) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context, const v1::ScoreRequest* request,
                                  v1::ScoreResponse* response) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* context,
                                                           const v1::GenerateRequest* request) override;

 private:
  template <typename Request, typename Response, typename CoreRequest, typename Result, typename Call, typename Fill>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, const char* rpc, const Request* request,
                                  Response* response, absl::StatusOr<CoreRequest> mapped, Call call, Fill fill);

  InferenceCalls* const calls_;
  RepositoryCalls* const repository_;
};

// The call's deadline: infinite when the client set none.
absl::Time DeadlineOf(const grpc::CallbackServerContext* context);

}  // namespace elliptical::server
