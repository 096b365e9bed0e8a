// OpenAI's completions API on the HTTP front (docs/protocols/openai.md):
//   GET  /v1/models        the ready language models, in OpenAI's list shape
//   POST /v1/completions   text completion, whole or streamed as server-sent events
//
// Every choice is one InferenceCalls::Generate call (protocol "openai" in the metrics): the
// core validates, limits and schedules it; this layer only maps OpenAI's fields (openai_json.h)
// and moves the generation events to the client.
//
// Nothing waits: the streams' listeners post a pump to a transport thread, which takes the
// events and writes them. A stream writes one chunk at a time (the events that arrive while a
// chunk is being written go together in the next), so a slow reader holds back its own events
// only, never a thread. A client that closes its connection is seen by the transport at once;
// the completion is then dropped, which cancels its generations (they finish CANCELLED).
//
// Thread-safety: the handlers may run on any of the transport's threads at once. `calls` must
// outlive the server.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "server/core/inference_calls.h"
#include "server/transport/http/http_router.h"

namespace elliptical::server {

struct OpenAIOptions {
  // The `created` time of every listed model (Unix seconds): when the server started.
  int64_t models_created = 0;
};

void AddOpenAIRoutes(HttpRouter& router, InferenceCalls& calls, OpenAIOptions options = {});

}  // namespace elliptical::server
