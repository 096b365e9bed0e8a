#include "server/protocols/openai/openai_routes.h"

#include <atomic>
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
#include "server/transport/http/http_status.h"
#include "server/protocols/openai/openai_json.h"

namespace elliptical::server {
namespace {

using nlohmann::json;
using openai::ChoiceDelta;
using openai::ChoiceState;
using openai::CompletionRequest;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse Json(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = Dump(body);
  return r;
}

HttpResponse StatusJson(const absl::Status& status) {
  return Json(HttpStatusFor(status.code()), openai::StatusErrorJson(status));
}

std::string Event(const std::string& data) { return absl::StrCat("data: ", data, "\n\n"); }

std::string CompletionId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("cmpl-%016x%08x", rng(), static_cast<uint32_t>(rng()));
}

// The generations of one completion request (prompts x n choices), what they have produced,
// and its answer. The streams' listeners only post a pump to a transport thread; the pump takes
// the events and writes them (a stream: at most one chunk in flight, the rest wait in the
// generation streams). Destroying it cancels the generations still running and records them
// CANCELLED (the client went away, or the request failed on another choice): the transport
// holds it for as long as the exchange lasts (HttpReply::Hold).
class Completion : public std::enable_shared_from_this<Completion> {
 public:
  Completion(CompletionRequest request, std::shared_ptr<HttpReply> reply)
      : request_(std::move(request)),
        reply_(std::move(reply)),
        id_(CompletionId()),
        created_(absl::ToUnixSeconds(absl::Now())) {}

  ~Completion() {
    for (size_t i = 0; i < calls_.size(); ++i) {
      calls_[i]->SetListener(nullptr);  // waits out a listener call in progress
      if (!recorded_[i]) {
        calls_[i]->Cancel();
        calls_[i]->Finish(absl::CancelledError("the HTTP client went away"));
      }
    }
  }

  // Submits every choice; the first refusal is the request's answer (the others are cancelled).
  absl::Status Start(InferenceCalls& calls) {
    const CallContext context{Protocol::kOpenAI, absl::InfiniteFuture()};
    absl::MutexLock lock(&mu_);
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
    if (request_.stream) {
      HttpResponse head;
      head.status = 200;
      head.content_type = "text/event-stream";
      head.headers = {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}};  // proxies: pass events on
      reply_->BeginStream(std::move(head));
    }
    return absl::OkStatus();
  }

  // After Start, outside its lock: the listeners run once at once.
  void Listen() {
    absl::MutexLock lock(&mu_);  // Wake takes no lock of this
    for (auto& call : calls_) call->SetListener([this] { Wake(); });
  }

 private:
  // On the scheduler's thread: must not block. One pump is queued at a time.
  void Wake() {
    if (scheduled_.exchange(true)) return;
    reply_->Post([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->Pump();
    });
  }

  void Pump() {
    scheduled_.store(false);  // events pushed from now on schedule another pump
    absl::MutexLock lock(&mu_);
    if (over_) return;
    if (request_.stream) return PumpStream();
    PumpWhole();
  }

  // Moves the queued events into the choices, and calls `on_event(choice, delta, final)` once
  // for each choice that received any: its new text and the token entries not yet streamed.
  template <typename F>
  void Take(F on_event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t i = 0; i < calls_.size(); ++i) {
      calls_[i]->Take(&pending_[i]);
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
        final = IsFinal(pending_[i].front());
        delta.text += one.text;
        pending_[i].pop_front();
      }
      pending_[i].clear();  // nothing follows a final event
      on_event(i, delta, final);
    }
  }

  bool AllFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const ChoiceState& c : choices_) {
      if (!c.finished) return false;
    }
    return true;
  }

  // The first failed choice's status, else OK.
  absl::Status FirstError() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const ChoiceState& c : choices_) {
      if (c.finished && !c.status.ok()) return c.status;
    }
    return absl::OkStatus();
  }

  void Record(size_t i, const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (recorded_[i]) return;
    recorded_[i] = true;
    calls_[i]->Finish(status);
  }

  // Stops every unfinished choice (another failed); they are recorded CANCELLED.
  void CancelUnfinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t i = 0; i < calls_.size(); ++i) {
      if (!choices_[i].finished) calls_[i]->Cancel();
    }
  }

  // The whole answer, once every choice has ended.
  void PumpWhole() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Take([&](size_t, const ChoiceDelta&, bool final) {
      if (final && !FirstError().ok()) CancelUnfinished();
    });
    if (!AllFinished()) return;
    over_ = true;
    const absl::Status error = FirstError();
    for (size_t i = 0; i < choices_.size(); ++i) Record(i, choices_[i].status);
    if (!error.ok()) return reply_->Send(StatusJson(error));
    reply_->Send(Json(200, openai::CompletionJson(id_, created_, request_.model, choices_, request_.n)));
  }

  // The stream: a chunk per batch of events of one choice, the choice's last with its
  // finish_reason, then (with stream_options.include_usage) the usage chunk, and [DONE]. A failed choice ends the stream with an
  // error event (OpenAI's error object) and [DONE]. What one pump finds goes out in one write;
  // the outcomes it completes are recorded once the client has taken it.
  void PumpStream() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_) return;  // the write's completion pumps again
    std::string out;
    std::vector<std::pair<size_t, absl::Status>> outcomes;
    Take([&](size_t i, const ChoiceDelta& delta, bool final) {
      const ChoiceState& c = choices_[i];
      if (final && !c.status.ok()) {
        if (failed_) return;
        failed_ = true;
        CancelUnfinished();
        out += Event(Dump(openai::StatusErrorJson(c.status)));
        outcomes.emplace_back(i, c.status);
        return;
      }
      // Tokens whose text is held back (a possible stop sequence) go with the next chunk.
      if (failed_ || (delta.text.empty() && !final)) return;
      out += Event(Dump(openai::ChunkJson(id_, created_, request_.model, c, delta, final, request_.include_usage)));
      streamed_[i] = c.tokens.size();
      if (final) outcomes.emplace_back(i, absl::OkStatus());
    });
    const bool last = AllFinished();
    if (last) {
      // The rest of a failed request: recorded CANCELLED (they were stopped because of it).
      for (size_t i = 0; i < choices_.size(); ++i) {
        const ChoiceState& c = choices_[i];
        bool listed = false;
        for (const auto& o : outcomes) listed = listed || o.first == i;
        if (!recorded_[i] && !listed) {
          outcomes.emplace_back(i, c.status.ok() && failed_ ? absl::CancelledError("another choice failed") : c.status);
        }
      }
      // Only when asked: a client that reads choices[0] of every chunk would fail on it.
      if (!failed_ && request_.include_usage) {
        out += Event(Dump(openai::UsageChunkJson(id_, created_, request_.model, choices_, request_.n)));
      }
      out += Event("[DONE]");
      over_ = true;
    }
    if (out.empty()) return;
    writing_ = true;
    reply_->Write(std::move(out), [weak = weak_from_this(), outcomes = std::move(outcomes), last](bool ok) {
      auto self = weak.lock();
      if (!self) return;
      {
        absl::MutexLock lock(&self->mu_);
        self->writing_ = false;
        if (!ok) {  // the client is gone: what is unrecorded is recorded CANCELLED when this goes
          self->over_ = true;
          return;
        }
        for (const auto& [i, status] : outcomes) self->Record(i, status);
      }
      if (last) return self->reply_->End();
      self->Pump();
    });
  }

  const CompletionRequest request_;
  const std::shared_ptr<HttpReply> reply_;
  const std::string id_;
  const int64_t created_;
  std::atomic<bool> scheduled_{false};

  absl::Mutex mu_;
  std::vector<std::unique_ptr<GenerateCall>> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<ChoiceState> choices_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> recorded_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> streamed_ ABSL_GUARDED_BY(mu_);
  std::vector<std::deque<GenerationEvent>> pending_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool over_ ABSL_GUARDED_BY(mu_) = false;  // answered, or the client is gone
};

}  // namespace

void AddOpenAIRoutes(HttpRouter& router, InferenceCalls& calls, OpenAIOptions options) {
  router.Add("GET", "/v1/models", [&calls, options](HttpRequest&, const std::shared_ptr<HttpReply>& reply) {
    reply->Send(Json(200, openai::ModelsJson(calls.repository().List(), options.models_created)));
  });

  router.Add("GET", "/v1/models/{id}", [&calls, options](HttpRequest& req, const std::shared_ptr<HttpReply>& reply) {
    const std::string name(req.Param("id"));
    json list = openai::ModelsJson(calls.repository().List(), options.models_created);
    for (const json& m : list["data"]) {
      if (m["id"] == name) return reply->Send(Json(200, m));
    }
    reply->Send(Json(404, openai::ErrorJson(absl::StrCat("The model '", name, "' does not exist or is not a ready "
                                                         "language model"),
                                            "invalid_request_error", "model", "model_not_found")));
  });

  router.Add("POST", "/v1/completions", [&calls](HttpRequest& req, const std::shared_ptr<HttpReply>& reply) {
    CompletionRequest request;
    openai::RequestError error;
    if (!openai::ParseCompletionRequest(req.body, &request, &error)) {
      return reply->Send(Json(400, openai::ErrorJson(error.message, "invalid_request_error", error.param)));
    }
    auto completion = std::make_shared<Completion>(std::move(request), reply);
    if (absl::Status s = completion->Start(calls); !s.ok()) return reply->Send(StatusJson(s));
    // The transport keeps the completion for as long as the exchange lasts; when the client
    // leaves, it lets go and the completion's destructor cancels what still runs.
    reply->Hold(completion);
    completion->Listen();
  });
}

}  // namespace elliptical::server
