#include "server/http/openai_routes.h"

#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/http/http_status.h"
#include "server/http/openai_json.h"
#include "server/http/peer_connection.h"

namespace elliptical::server {
namespace {

using nlohmann::json;
using openai::ChoiceDelta;
using openai::ChoiceState;
using openai::CompletionRequest;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void SendStatus(httplib::Response& res, const absl::Status& status) {
  SendJson(res, HttpStatusFor(status.code()), openai::StatusErrorJson(status));
}

std::string CompletionId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("cmpl-%016x%08x", rng(), static_cast<uint32_t>(rng()));
}

// The generations of one completion request (prompts x n choices) and what they have produced.
// The streams' listeners only set a flag and signal; the handler thread waits for it, takes the
// events and writes them. Destroying it cancels the generations still running and records them
// CANCELLED (the client went away, or the request failed on another choice).
class Completion {
 public:
  explicit Completion(CompletionRequest request) : request_(std::move(request)) {}

  ~Completion() {
    for (size_t i = 0; i < calls_.size(); ++i) {
      calls_[i]->stream().SetListener(nullptr);  // waits out a listener call in progress
      if (!recorded_[i]) {
        calls_[i]->Cancel();
        calls_[i]->Finish(absl::CancelledError("the HTTP client went away"));
      }
    }
  }

  const CompletionRequest& request() const { return request_; }
  const std::vector<ChoiceState>& choices() const { return choices_; }

  // Submits every choice; the first refusal is the request's answer (the others are cancelled).
  absl::Status Start(InferenceCalls& calls) {
    const CallContext context{Protocol::kOpenAI, absl::InfiniteFuture()};
    for (size_t p = 0; p < request_.prompts.size(); ++p) {
      for (int i = 0; i < request_.n; ++i) {
        // max_tokens 0 (with echo): the prompt is only scored, as a scoring request.
        absl::StatusOr<std::unique_ptr<GenerateCall>> call =
            request_.max_tokens == 0
                ? calls.ScoreStream(context, openai::ToScoreRequest(request_, static_cast<int>(p)))
                : calls.Generate(context, openai::ToGenerateRequest(request_, static_cast<int>(p), i));
        if (!call.ok()) return call.status();
        choices_.push_back(openai::StartChoice(static_cast<int>(choices_.size()), request_, request_.prompts[p]));
        calls_.push_back(*std::move(call));
        recorded_.push_back(false);
        streamed_.push_back(0);
        pending_.emplace_back();
      }
    }
    for (auto& call : calls_) {
      call->stream().SetListener([this] {
        absl::MutexLock lock(&mu_);
        woken_ = true;
        cv_.Signal();
      });
    }
    return absl::OkStatus();
  }

  // Waits until some stream has news or `timeout` passes; false on timeout.
  bool Wait(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + timeout;
    while (!woken_) {
      if (cv_.WaitWithDeadline(&mu_, until) && !woken_) return false;
    }
    woken_ = false;
    return true;
  }

  // Moves the queued events into the choices, and calls `on_event(choice, delta, final)` once
  // for each choice that received any: its new text and the token entries not yet streamed
  // (MarkStreamed). Returns false as soon as on_event does.
  template <typename F>
  bool Pump(F on_event) {
    for (size_t i = 0; i < calls_.size(); ++i) {
      calls_[i]->stream().Take(&pending_[i]);
      if (pending_[i].empty() || choices_[i].finished) {
        pending_[i].clear();
        continue;
      }
      ChoiceDelta delta;
      delta.first_token = streamed_[i];
      bool final = false;
      while (!pending_[i].empty() && !final) {
        ChoiceDelta one;
        openai::AddEvent(pending_[i].front(), &choices_[i], &one);
        final = pending_[i].front().final;
        delta.text += one.text;
        pending_[i].pop_front();
      }
      pending_[i].clear();  // nothing follows a final event
      if (!on_event(i, delta, final)) return false;
    }
    return true;
  }

  // The token entries of choice `i` so far have reached the client.
  void MarkStreamed(size_t i) { streamed_[i] = choices_[i].tokens.size(); }

  bool AllFinished() const {
    for (const ChoiceState& c : choices_) {
      if (!c.finished) return false;
    }
    return true;
  }

  // The first failed choice's status, else OK.
  absl::Status FirstError() const {
    for (const ChoiceState& c : choices_) {
      if (c.finished && !c.status.ok()) return c.status;
    }
    return absl::OkStatus();
  }

  // Records choice `i`'s outcome as given to the client.
  void Record(size_t i, const absl::Status& status) {
    if (recorded_[i]) return;
    recorded_[i] = true;
    calls_[i]->Finish(status);
  }

  // Stops every unfinished choice (another failed); they are recorded CANCELLED.
  void CancelUnfinished() {
    for (size_t i = 0; i < calls_.size(); ++i) {
      if (!choices_[i].finished) calls_[i]->Cancel();
    }
  }

 private:
  const CompletionRequest request_;
  std::vector<std::unique_ptr<GenerateCall>> calls_;
  std::vector<ChoiceState> choices_;
  std::vector<bool> recorded_;
  std::vector<size_t> streamed_;
  std::vector<std::deque<GenerationStream::Event>> pending_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
};

// Whether the client has gone (as far as can be seen without writing to it).
bool ClientGone(const std::optional<PeerConnection>& peer) { return peer && peer->Closed(); }

// The whole answer, once every choice has ended. A client that leaves first is seen within
// `poll` (PeerConnection): the answer is then dropped, and the Completion's destructor
// cancels the generations and records them CANCELLED.
void Complete(Completion& completion, const std::string& id, int64_t created, const std::optional<PeerConnection>& peer,
              absl::Duration poll, httplib::Response& res) {
  while (!completion.AllFinished()) {
    completion.Wait(poll);
    if (ClientGone(peer)) return;  // one poll(2) per wake-up: cheap beside a decode step
    completion.Pump([&](size_t, const ChoiceDelta&, bool final) {
      if (final && !completion.FirstError().ok()) completion.CancelUnfinished();
      return true;
    });
  }
  const absl::Status error = completion.FirstError();
  for (size_t i = 0; i < completion.choices().size(); ++i) {
    completion.Record(i, completion.choices()[i].status);
  }
  if (!error.ok()) {
    SendStatus(res, error);
    return;
  }
  const CompletionRequest& r = completion.request();
  SendJson(res, 200, openai::CompletionJson(id, created, r.model, completion.choices(), r.n));
}

bool WriteEvent(httplib::DataSink& sink, const std::string& data) {
  const std::string event = absl::StrCat("data: ", data, "\n\n");
  return sink.is_writable() && sink.write(event.data(), event.size());
}

// The stream: a chunk per batch of events of one choice, the choice's last with its
// finish_reason, then the usage chunk and [DONE]. A failed choice ends the stream with an
// error event (OpenAI's error object) and [DONE]. Returns false when the client went away.
bool Stream(Completion& completion, const std::string& id, int64_t created, const std::optional<PeerConnection>& peer,
            const OpenAIOptions& options, httplib::DataSink& sink) {
  const CompletionRequest& r = completion.request();
  bool failed = false;
  bool client_ok = true;
  absl::Time quiet_since = absl::Now();
  while (client_ok && !completion.AllFinished()) {
    if (!completion.Wait(options.disconnect_poll_interval)) {
      if (ClientGone(peer)) return false;
      if (absl::Now() - quiet_since < options.keepalive_interval) continue;
      // Nothing produced for a while (queued, or a long prefill): a comment line, which SSE
      // readers ignore, keeps proxies from timing the stream out and tells whether the client
      // is still there where its socket could not be watched.
      static constexpr char kKeepAlive[] = ": keep-alive\n\n";
      client_ok = sink.is_writable() && sink.write(kKeepAlive, sizeof(kKeepAlive) - 1);
      quiet_since = absl::Now();
      continue;
    }
    quiet_since = absl::Now();
    client_ok = completion.Pump([&](size_t i, const ChoiceDelta& delta, bool final) {
      const ChoiceState& c = completion.choices()[i];
      if (final && !c.status.ok()) {
        if (failed) return true;
        failed = true;
        completion.CancelUnfinished();
        const bool ok = WriteEvent(sink, Dump(openai::StatusErrorJson(c.status)));
        if (ok) completion.Record(i, c.status);
        return ok;
      }
      // Tokens whose text is held back (a possible stop sequence) go with the next chunk.
      if (failed || (delta.text.empty() && !final)) return true;
      if (!WriteEvent(sink, Dump(openai::ChunkJson(id, created, r.model, c, delta, final)))) return false;
      completion.MarkStreamed(i);
      if (final) completion.Record(i, absl::OkStatus());
      return true;
    });
  }
  if (!client_ok) return false;
  // The rest of a failed request: recorded CANCELLED (they were stopped because of it).
  for (size_t i = 0; i < completion.choices().size(); ++i) {
    const ChoiceState& c = completion.choices()[i];
    completion.Record(i, c.status.ok() && failed ? absl::CancelledError("another choice failed") : c.status);
  }
  if (!failed && !WriteEvent(sink, Dump(openai::UsageChunkJson(id, created, r.model, completion.choices(), r.n)))) {
    return false;
  }
  if (!WriteEvent(sink, "[DONE]")) return false;
  sink.done();
  return true;
}

}  // namespace

void AddOpenAIRoutes(httplib::Server& server, InferenceCalls& calls, OpenAIOptions options) {
  server.Get("/v1/models", [&calls, options](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, openai::ModelsJson(calls.repository().List(), options.models_created));
  });

  server.Get(R"(/v1/models/([^/]+))", [&calls, options](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    json list = openai::ModelsJson(calls.repository().List(), options.models_created);
    for (const json& m : list["data"]) {
      if (m["id"] == name) return SendJson(res, 200, m);
    }
    SendJson(res, 404, openai::ErrorJson(absl::StrCat("The model '", name, "' does not exist or is not a ready "
                                                      "language model"),
                                         "invalid_request_error", "model", "model_not_found"));
  });

  server.Post("/v1/completions", [&calls, options](const httplib::Request& req, httplib::Response& res) {
    CompletionRequest request;
    openai::RequestError error;
    if (!openai::ParseCompletionRequest(req.body, &request, &error)) {
      return SendJson(res, 400, openai::ErrorJson(error.message, "invalid_request_error", error.param));
    }
    const bool stream = request.stream;
    auto completion = std::make_shared<Completion>(std::move(request));
    if (absl::Status s = completion->Start(calls); !s.ok()) return SendStatus(res, s);
    const std::string id = CompletionId();
    const int64_t created = absl::ToUnixSeconds(absl::Now());
    const std::optional<PeerConnection> peer = PeerConnection::Of(req);
    if (!stream) return Complete(*completion, id, created, peer, options.disconnect_poll_interval, res);

    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // proxies: do not hold the events back
    // The provider runs on this worker thread after the handler returns (the connection, and so
    // `peer`, is still this request's); the releaser drops the completion (cancelling what
    // still runs) whether the stream ended or broke.
    res.set_chunked_content_provider(
        "text/event-stream",
        [completion, id, created, peer, options](size_t, httplib::DataSink& sink) {
          return Stream(*completion, id, created, peer, options, sink);
        },
        [completion](bool) mutable { completion.reset(); });
  });
}

}  // namespace elliptical::server
