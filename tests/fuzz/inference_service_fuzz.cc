// Raw request bytes into the real InferenceService, in process. LLVMFuzzerInitialize starts the
// service once on the shipped models (a classifier, a segmenter and a language model, copied
// under short names with small queues and generation limits) behind a gRPC server, and every
// input is one call through an in-process channel with a generic stub: the bytes are sent as
// they are, so unparsable ones reach the server's deserialisation too.
//
// Input: byte 0 picks the method (bits 0-2), whether the client cancels after the first response
// (bit 3) and the deadline (bit 4: 50 ms, else 2 s); the rest is the request message. Every call
// must end (the deadline bounds it) with some status; the server must never crash or hang.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "model/api/runtime.h"
#include "server/protocols/elliptical_v1/inference_service.h"
#include "server/repository/model_repository.h"

namespace {

namespace fs = std::filesystem;
using elliptical::server::InferenceService;
using elliptical::server::ModelRepository;

constexpr const char* kMethods[] = {
    "/elliptical.v1.InferenceService/Classify",   "/elliptical.v1.InferenceService/Segment",
    "/elliptical.v1.InferenceService/Generate",   "/elliptical.v1.InferenceService/GetModelMetadata",
    "/elliptical.v1.InferenceService/ListModels", "/elliptical.v1.InferenceService/Generate",
    "/elliptical.v1.InferenceService/Score",      "/elliptical.v1.InferenceService/NoSuchMethod"};

// Never destroyed: server threads may still be running when the fuzzer exits.
grpc::GenericStub* stub = nullptr;

// Copies models/<source> to <repo>/<name> with `patch` merged into its config.json.
void AddModel(const fs::path& repo, const std::string& name, const std::string& source,
              const nlohmann::json& patch) {
  const fs::path dir = repo / name;
  fs::create_directories(dir);
  fs::copy(fs::path(ELLIPTICAL_SOURCE_DIR) / "models" / source, dir,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  config.merge_patch(patch);
  std::ofstream(dir / "config.json") << config.dump(2);
}

void Die(const std::string& message) {
  std::fprintf(stderr, "inference_service_fuzz: %s\n", message.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char pattern[] = "/tmp/elliptical-service-fuzz-XXXXXX";
  if (!mkdtemp(pattern)) Die("cannot make a temporary directory");
  const fs::path repo = pattern;
  const nlohmann::json vision = {
      {"device", "cpu"},
      {"batching", {{"max_batch_size", 4}, {"max_queue_delay_ms", 0}, {"max_queue_size", 16}}},
      {"instances", {{"count", 1}, {"threads", 1}}}};
  AddModel(repo, "vit", "digits-vit", vision);
  AddModel(repo, "seg", "digit-scenes-segmenter", vision);
  AddModel(repo, "lm", "kjv-lm",
           {{"device", "cpu"},
            {"generation",
             {{"max_running", 4}, {"max_waiting", 8}, {"max_cache_mb", 8},
              {"default_max_new_tokens", 4}, {"max_new_tokens_limit", 12}}}});

  elliptical::model::SetComputeThreads(1);
  ModelRepository::Options options;
  options.root = repo.string();
  auto repository = ModelRepository::Create(options);
  if (!repository.ok()) Die(std::string(repository.status().message()));
  (*repository)->LoadAll();
  for (const auto& snapshot : (*repository)->List()) {
    if (snapshot.state != elliptical::server::ModelState::kReady) {
      Die("model " + snapshot.name + " did not load: " + snapshot.reason);
    }
  }
  fs::remove_all(repo);  // loaded into memory; nothing is read from it again

  // The server's limits, smaller: an image may be segmented window by window, and a smaller
  // pixel limit keeps every input fast while the limit checks stay the same.
  elliptical::server::RequestLimits limits;
  limits.max_images_per_request = 8;
  limits.max_image_pixels = 256 * 256;
  limits.max_request_pixels = 4 * 256 * 256;
  auto* service = new InferenceService(new elliptical::server::InferenceCalls(repository->release(), limits));
  grpc::ServerBuilder builder;
  builder.RegisterService(service);
  grpc::Server* server = builder.BuildAndStart().release();
  if (!server) Die("cannot start the gRPC server");
  stub = new grpc::GenericStub(server->InProcessChannel(grpc::ChannelArguments()));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  const std::string method = kMethods[control & 7];
  const bool cancel_early = control & 8;
  const auto timeout = (control & 16) ? std::chrono::milliseconds(50) : std::chrono::seconds(2);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::CompletionQueue cq;
  const grpc::Slice slice(data + 1, size - 1);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;

  // Every method as a stream of one request: one code path for unary and server streaming.
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub->PrepareCall(&context, method, &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](int expected) {
    if (!cq.Next(&tag, &ok) || reinterpret_cast<intptr_t>(tag) != expected) Die("completion queue out of order");
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (step(1)) {
    call->Write(request, reinterpret_cast<void*>(2));
    if (step(2)) {
      call->WritesDone(reinterpret_cast<void*>(3));
      step(3);
    }
    for (int reads = 0;; ++reads) {
      if (cancel_early && reads == 1) context.TryCancel();
      call->Read(&response, reinterpret_cast<void*>(4));
      if (!step(4)) break;
    }
  }
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return 0;
}
