// elliptical-client generate "PROMPT": prints each token's text as it arrives.
// elliptical-client score "TEXT": prints each token's log-probability and the perplexity.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <iostream>
#include <thread>

#include "absl/strings/str_format.h"
#include "client/cli/call.h"

namespace elliptical::client {
namespace {

// Cancels `context` when the user presses Ctrl-C. SIGINT is blocked in every thread and a
// dedicated thread waits for it, so the cancellation runs outside a signal handler.
class CancelOnInterrupt {
 public:
  explicit CancelOnInterrupt(grpc::ClientContext* context) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    waiter_ = std::thread([this, context, set] {
      int signal = 0;
      sigwait(&set, &signal);
      if (!done_) {
        interrupted_ = true;
        context->TryCancel();
      }
    });
  }
  ~CancelOnInterrupt() {
    done_ = true;
    pthread_kill(waiter_.native_handle(), SIGINT);  // wakes the waiter, which then exits
    waiter_.join();
  }
  bool interrupted() const { return interrupted_; }

 private:
  std::atomic<bool> done_{false}, interrupted_{false};
  std::thread waiter_;
};

const char* FinishName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH: return "max_new_tokens reached";
    case v1::FINISH_REASON_END_OF_SEQUENCE: return "end of sequence";
    case v1::FINISH_REASON_STOP_SEQUENCE: return "stop sequence";
    default: return "unknown";
  }
}

}  // namespace

int RunGenerate(const CallOptions& options, const std::string& prompt, const GenerateOptions& g) {
  if (prompt.empty()) {
    std::cerr << "usage: elliptical-client generate [--model=NAME] [--max_new_tokens=N] \"PROMPT\"\n";
    return 2;
  }
  // Block SIGINT before gRPC starts its threads, so they inherit the mask.
  grpc::ClientContext context;
  CancelOnInterrupt cancel(&context);
  auto stub = v1::InferenceService::NewStub(Connect(options));
  std::string model = options.model;
  if (model.empty()) model = PickModel(options, stub.get(), v1::MODEL_FAMILY_LANGUAGE_MODEL);
  if (model.empty()) return 1;

  v1::GenerateRequest request;
  request.set_model_name(model);
  request.set_prompt(prompt);
  request.set_max_new_tokens(static_cast<uint32_t>(g.max_new_tokens));
  request.set_temperature(g.temperature);
  request.set_top_k(static_cast<uint32_t>(g.top_k));
  request.set_top_p(g.top_p);
  request.set_seed(g.seed);
  request.set_coalesce_tokens(true);  // the loop below reads `tokens`
  for (const std::string& s : g.stop) request.add_stop(s);
  SetDeadline(options, &context);
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse message;
  v1::GenerationSummary summary;
  std::cout << prompt << std::flush;
  while (reader->Read(&message)) {
    if (message.tokens_size() > 0) {
      for (const v1::Token& token : message.tokens()) std::cout << token.text();
      std::cout << std::flush;
    } else if (message.has_token()) {
      std::cout << message.token().text() << std::flush;
    }
    if (message.has_summary()) summary = message.summary();
  }
  std::cout << "\n";
  grpc::Status status = reader->Finish();
  if (cancel.interrupted()) {
    std::cerr << "cancelled\n";
    return 130;
  }
  if (!status.ok()) return Report(options, status);
  std::cerr << absl::StrFormat("[%s: %d prompt tokens, %d generated, first token after %.1f ms, %.1f ms in all]\n",
                               FinishName(summary.finish_reason()), summary.prompt_tokens(),
                               summary.generated_tokens(), summary.time_to_first_token_us() / 1e3,
                               summary.total_us() / 1e3);
  return 0;
}

int RunScore(const CallOptions& options, const std::string& text, bool end_of_sequence) {
  if (text.empty()) {
    std::cerr << "usage: elliptical-client score [--model=NAME] [--end_of_sequence=false] \"TEXT\"\n";
    return 2;
  }
  auto stub = v1::InferenceService::NewStub(Connect(options));
  std::string model = options.model;
  if (model.empty()) model = PickModel(options, stub.get(), v1::MODEL_FAMILY_LANGUAGE_MODEL);
  if (model.empty()) return 1;

  v1::ScoreRequest request;
  request.set_model_name(model);
  request.set_text(text);
  request.set_no_end_of_sequence(!end_of_sequence);
  v1::ScoreResponse response;
  grpc::ClientContext context;
  SetDeadline(options, &context);
  grpc::Status status = stub->Score(&context, request, &response);
  if (!status.ok()) return Report(options, status);
  std::cout << absl::StrFormat("%5s  %6s  %-20s %10s\n", "#", "id", "piece", "logprob");
  for (int i = 0; i < response.tokens_size(); ++i) {
    const v1::ScoredToken& t = response.tokens(i);
    std::cout << absl::StrFormat("%5d  %6d  %-20s %10s\n", i, t.id(), t.piece(),
                                 t.has_logprob() ? absl::StrFormat("%.4f", t.logprob()) : "-");
  }
  std::cout << absl::StrFormat("perplexity %.4f over %d scored tokens (total logprob %.4f, model %s)\n",
                               response.perplexity(), response.scored_tokens(), response.total_logprob(),
                               response.model_name());
  return 0;
}

}  // namespace elliptical::client
