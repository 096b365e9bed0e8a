#include "server/core/generation_events.h"

#include <utility>

namespace elliptical::server {

void AppendEvents(GenerationStream::Event&& e, std::deque<GenerationEvent>* out) {
  if (e.has_prompt_scores) out->push_back(PromptScoresEvent{std::move(e.prompt_scores)});
  if (e.final) {
    if (!e.status.ok()) {
      out->push_back(FailedEvent{std::move(e.status), e.prompt_tokens, e.generated_tokens});
      return;
    }
    FinishedEvent f;
    f.reason = e.reason;
    f.text = std::move(e.text);
    f.prompt_tokens = e.prompt_tokens;
    f.generated_tokens = e.generated_tokens;
    f.time_to_first_token = e.time_to_first_token;
    f.total = e.total;
    f.scored_tokens = e.scored_tokens;
    f.scored_logprob_sum = e.scored_logprob_sum;
    out->push_back(std::move(f));
    return;
  }
  if (e.has_token || !e.text.empty()) {
    out->push_back(TokenEvent{e.has_token, e.token_id, std::move(e.text), e.logprob, std::move(e.top_logprobs)});
  }
}

}  // namespace elliptical::server
