// OpenAI's completions API on the HTTP front (docs/protocols/openai.md):
//   GET  /v1/models        the ready language models, in OpenAI's list shape
//   POST /v1/completions   text completion, whole or streamed as server-sent events
//
// Every choice is one InferenceCalls::Generate call (protocol "openai" in the metrics): the
// core validates, limits and schedules it; this layer only maps OpenAI's fields (openai_json.h)
// and moves the generation events to the client. The handler thread sleeps on a condition
// variable that the streams' listeners signal; it never polls for events.
//
// Threads: cpp-httplib serves each connection on one worker of its pool (--http_threads), so a
// completion holds its worker until it ends; a streaming one for as long as it streams.
//
// Cancellation: a completion whose client goes away cancels its generations, which then
// finish CANCELLED. The handler watches the request's socket (peer_connection.h) every
// disconnect_poll_interval while it waits, streaming or not; a stream also notices when a
// write fails, including the keep-alive comment sent after keepalive_interval without events.
//
// Thread-safety: the handlers may run on any of the server's threads at once. `calls` must
// outlive the server.
#pragma once

#include <cstdint>

#include <httplib.h>

#include "absl/time/time.h"
#include "server/calls/inference_calls.h"

namespace elliptical::server {

struct OpenAIOptions {
  // The `created` time of every listed model (Unix seconds): when the server started.
  int64_t models_created = 0;
  // How long a stream may go without an event before a keep-alive comment checks the client.
  absl::Duration keepalive_interval = absl::Seconds(15);
  // How often a waiting completion checks whether its client has closed the connection.
  absl::Duration disconnect_poll_interval = absl::Milliseconds(200);
};

void AddOpenAIRoutes(httplib::Server& server, InferenceCalls& calls, OpenAIOptions options = {});

}  // namespace elliptical::server
