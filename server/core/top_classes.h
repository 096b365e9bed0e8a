// The k most probable classes of a dense probability vector, best first, ties broken by class id
// so equal inputs give equal answers: how every codec that presents top classes orders them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace elliptical::server {

inline std::vector<int> TopClasses(const std::vector<float>& probabilities, uint64_t k) {
  std::vector<int> order(probabilities.size());
  std::iota(order.begin(), order.end(), 0);
  // k is a client's number: capped here, before anything narrows it.
  const size_t n = static_cast<size_t>(std::min<uint64_t>(k, order.size()));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(), [&](int a, int b) {
    return probabilities[a] > probabilities[b] || (probabilities[a] == probabilities[b] && a < b);
  });
  order.resize(n);
  return order;
}

}  // namespace elliptical::server
