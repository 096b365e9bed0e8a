#include "server/protocols/elliptical_v1/inference_service.h"

#include "server/protocols/elliptical_v1/generate_reactor.h"
#include "server/transport/grpc/grpc_status.h"
#include "server/transport/grpc/unary_call.h"
#include "server/protocols/elliptical_v1/v1_codec.h"
#include "common/exception_guard.h"

namespace elliptical::server {
namespace {

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

CallContext Context(const grpc::CallbackServerContext* context) {
  return CallContext{Protocol::kElliptical, DeadlineOf(context)};
}

}  // namespace

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  // No deadline arrives as the largest time_point: keep it infinite rather than overflow.
  if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::FromChrono(deadline);
  }
  return absl::InfiniteFuture();
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest*,
                                                       v1::ListModelsResponse* response) {
  for (const ModelSnapshot& snapshot : calls_->repository().List()) {
    FillModelSummary(snapshot, response->add_models());
  }
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::GetModelMetadata(grpc::CallbackServerContext* context,
                                                             const v1::GetModelMetadataRequest* request,
                                                             v1::GetModelMetadataResponse* response) {
  auto snapshot = calls_->Describe(request->model_name());
  if (!snapshot.ok()) return Answer(context, ToGrpcStatus(snapshot.status()));
  FillMetadata(*snapshot, response);
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(grpc::CallbackServerContext* context,
                                                            const v1::RepositoryIndexRequest* request,
                                                            v1::RepositoryIndexResponse* response) {
  if (!repository_) return Answer(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no model repository API"));
  for (const ModelSnapshot& snapshot : repository_->Index(request->ready_only())) {
    FillVersionStatus(snapshot, response->add_models());
  }
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::LoadModel(grpc::CallbackServerContext* context,
                                                      const v1::LoadModelRequest* request,
                                                      v1::LoadModelResponse* response) {
  if (!repository_) return Answer(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no model repository API"));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RepositoryCalls* repository = repository_;
  repository_->Start(RepositoryCalls::Change::kLoad, request->model_name(),
                     [reactor, repository, request, response](const absl::Status& status) {
                       if (status.ok()) {
                         for (const ModelSnapshot& v : repository->Versions(request->model_name())) {
                           FillVersionStatus(v, response->add_versions());
                         }
                       }
                       reactor->Finish(ToGrpcStatus(status));
                     });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::UnloadModel(grpc::CallbackServerContext* context,
                                                        const v1::UnloadModelRequest* request,
                                                        v1::UnloadModelResponse*) {
  if (!repository_) return Answer(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no model repository API"));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  repository_->Start(RepositoryCalls::Change::kUnload, request->model_name(),
                     [reactor](const absl::Status& status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

// A unary call through the core: the request mapped by the codec (a refusal there is counted
// like the core's own), the result filled into the response on the thread that finished it.
template <typename Request, typename Response, typename CoreRequest, typename Result, typename Call, typename Fill>
grpc::ServerUnaryReactor* InferenceService::Unary(grpc::CallbackServerContext* context, const char* rpc,
                                                  const Request* request, Response* response,
                                                  absl::StatusOr<CoreRequest> mapped, Call call, Fill fill) {
  const CallContext ctx = Context(context);
  if (!mapped.ok()) {
    calls_->RecordRefusal(ctx, rpc, request->model_name(), mapped.status());
    return Answer(context, ToGrpcStatus(mapped.status()));
  }
  return new UnaryCall([&](InferenceCalls::Finish finish) {
    return call(ctx, *std::move(mapped),
                [request, response, fill, finish = std::move(finish)](absl::StatusOr<Result> result) {
                  if (!result.ok()) return finish(result.status());
                  // On a model's thread: nothing may escape into its batcher.
                  finish(GuardExceptions(request->model_name(), "the response", [&] {
                    fill(*request, *result, response);
                    return absl::OkStatus();
                  }));
                });
  });
}

grpc::ServerUnaryReactor* InferenceService::Classify(grpc::CallbackServerContext* context,
                                                     const v1::ClassifyRequest* request,
                                                     v1::ClassifyResponse* response) {
  return Unary<v1::ClassifyRequest, v1::ClassifyResponse, VisionRequest, ClassifyResult>(
      context, "Classify", request, response, ToVisionRequest(*request, calls_->limits()),
      [this](const CallContext& c, VisionRequest r, InferenceCalls::Done<ClassifyResult> d) {
        return calls_->Classify(c, std::move(r), std::move(d));
      },
      FillClassifyResponse);
}

grpc::ServerUnaryReactor* InferenceService::Segment(grpc::CallbackServerContext* context,
                                                    const v1::SegmentRequest* request,
                                                    v1::SegmentResponse* response) {
  return Unary<v1::SegmentRequest, v1::SegmentResponse, VisionRequest, SegmentResult>(
      context, "Segment", request, response, ToVisionRequest(*request, calls_->limits()),
      [this](const CallContext& c, VisionRequest r, InferenceCalls::Done<SegmentResult> d) {
        return calls_->Segment(c, std::move(r), std::move(d));
      },
      FillSegmentResponse);
}

grpc::ServerUnaryReactor* InferenceService::Score(grpc::CallbackServerContext* context,
                                                  const v1::ScoreRequest* request, v1::ScoreResponse* response) {
  return Unary<v1::ScoreRequest, v1::ScoreResponse, ScoreRequest, ScoreResult>(
      context, "Score", request, response, absl::StatusOr<ScoreRequest>(ToScoreRequest(*request)),
      [this](const CallContext& c, ScoreRequest r, InferenceCalls::Done<ScoreResult> d) {
        return calls_->Score(c, std::move(r), std::move(d));
      },
      [](const v1::ScoreRequest&, const ScoreResult& result, v1::ScoreResponse* out) {
        FillScoreResponse(result, out);
      });
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  auto* reactor = new GenerateReactor();
  const CallContext ctx = Context(context);
  auto mapped = ToGenerateRequest(*request, calls_->limits());
  if (!mapped.ok()) {
    calls_->RecordRefusal(ctx, "Generate", request->model_name(), mapped.status());
    reactor->Reject(ToGrpcStatus(mapped.status()));
    return reactor;
  }
  auto call = calls_->Generate(ctx, *mapped);
  if (!call.ok()) {
    reactor->Reject(ToGrpcStatus(call.status()));
  } else {
    reactor->Start(*std::move(call), request->coalesce_tokens());
  }
  return reactor;
}

}  // namespace elliptical::server
