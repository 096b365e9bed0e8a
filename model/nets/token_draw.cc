#include "model/nets/token_draw.h"

namespace elliptical::model {

torch::Tensor DrawTokens(const torch::Tensor& logits, const torch::Tensor& params, bool any_sampled) {
  const int64_t r = logits.size(0), v = logits.size(1);
  const auto f64 = logits.options().dtype(torch::kFloat64);
  const torch::Tensor temperature = params[kDrawTemperature], top_k = params[kDrawTopK];
  const torch::Tensor top_p = params[kDrawTopP], u = params[kDrawUniform];

  // Greedy: argmax returns the first of equal maxima, as std::max_element does. The host's
  // log-sum-exp subtracts the maximum in float32 and sums exp in float64: so does this (the sum's
  // order differs, a float64 roundoff).
  const torch::Tensor best = logits.argmax(1);                   // (R)
  const torch::Tensor top = logits.gather(1, best.unsqueeze(1));  // (R, 1) float32
  const torch::Tensor log_z = top.squeeze(1).to(torch::kFloat64) + (logits - top).to(torch::kFloat64).exp().sum(1).log();
  const torch::Tensor greedy_logprob = top.squeeze(1).to(torch::kFloat64) - log_z;
  if (!any_sampled) {
    return torch::stack({best.to(torch::kFloat64), greedy_logprob, torch::zeros({r}, f64)});
  }

  const torch::Tensor sampled = temperature > 0;
  // Best first, ties by id: a stable descending sort keeps equal logits in id order.
  auto [sorted, order] = logits.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
  const torch::Tensor rank = torch::arange(v, f64).unsqueeze(0);  // (1, V)
  // Candidates: the first top_k, or all. Past them every weight is 0, and the ranks below
  // count how many the host's (shorter) vectors hold.
  const torch::Tensor k = torch::where(top_k > 0, top_k.clamp_max(static_cast<double>(v)),
                                       torch::full_like(top_k, static_cast<double>(v)));
  const torch::Tensor inverse_temperature = 1.0 / torch::where(sampled, temperature, torch::ones_like(temperature));
  torch::Tensor p = ((sorted.to(torch::kFloat64) - sorted.narrow(1, 0, 1).to(torch::kFloat64)) *
                     inverse_temperature.unsqueeze(1))
                        .exp();
  p = torch::where(rank < k.unsqueeze(1), p, torch::zeros_like(p));
  p = p / p.sum(1, true);

  // Nucleus: candidate i stays while the mass before it is below top_p (the host's loop adds
  // p in order; a cumulative sum does the same additions).
  const torch::Tensor nucleus = (top_p > 0) & (top_p < 1);
  const torch::Tensor cumulative = p.cumsum(1);
  const torch::Tensor before = torch::cat({torch::zeros({r, 1}, f64), cumulative.narrow(1, 0, v - 1)}, 1);
  const torch::Tensor in_nucleus = (before < top_p.unsqueeze(1)) & (rank < k.unsqueeze(1));
  const torch::Tensor nucleus_size = in_nucleus.sum(1);  // (R) int64, >= 1
  const torch::Tensor mass = cumulative.gather(1, (nucleus_size - 1).clamp_min(0).unsqueeze(1));  // (R, 1)
  p = torch::where(nucleus.unsqueeze(1), p / mass, p);
  const torch::Tensor n = torch::where(nucleus, nucleus_size.to(torch::kFloat64), k);  // candidates left
  p = torch::where(rank < n.unsqueeze(1), p, torch::zeros_like(p));

  // std::discrete_distribution: weights normalised again, running sums with the last one 1.0,
  // lower_bound(u). With running sums non-decreasing, the first one >= u is at the count of
  // those < u among the first n - 1 (the last, 1.0, is above any u < 1).
  const torch::Tensor running = (p / p.sum(1, true)).cumsum(1);
  const torch::Tensor chosen =
      ((running < u.unsqueeze(1)) & (rank < (n - 1).unsqueeze(1))).sum(1).unsqueeze(1);  // (R, 1)
  const torch::Tensor sampled_id = order.gather(1, chosen).squeeze(1);
  const torch::Tensor sampled_logprob = p.gather(1, chosen).squeeze(1).log();

  return torch::stack({torch::where(sampled, sampled_id, best).to(torch::kFloat64),
                       torch::where(sampled, sampled_logprob, greedy_logprob),
                       (sampled & (n >= 2)).to(torch::kFloat64)});
}

}  // namespace elliptical::model
