// The front ends a call can arrive through. Every one of them serves through InferenceCalls
// (inference_calls.h); the protocol only labels the request metrics, so dashboards can split
// traffic by API while the serving path stays one.
#pragma once

namespace elliptical::server {

enum class Protocol {
  kElliptical,  // elliptical.v1.InferenceService over gRPC (server/protocols/elliptical_v1)
  kKServeGrpc,  // inference.GRPCInferenceService, the Open Inference Protocol (server/protocols/kserve)
  kKServeHttp,  // the same protocol's REST binding, /v2/... (server/protocols/kserve/kserve_routes.h)
  kOpenAI,      // /v1/completions and /v1/models (server/protocols/openai)
};

// The `protocol` label value: a fixed, bounded set.
inline const char* ProtocolLabel(Protocol p) {
  switch (p) {
    case Protocol::kElliptical: return "elliptical";
    case Protocol::kKServeGrpc: return "kserve_grpc";
    case Protocol::kKServeHttp: return "kserve_http";
    case Protocol::kOpenAI: return "openai";
  }
  return "unknown";
}

}  // namespace elliptical::server
