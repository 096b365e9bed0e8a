// How far a bfloat16 evaluation of a network may be from its float32 evaluation on the same
// weights, and therefore the tolerance of every bf16 parity check.
//
// The argument. bfloat16 keeps 8 significand bits: rounding to it perturbs a value by a relative
// error of at most u = 2^-8, uniform in [-u, u] under round-to-nearest-even (standard deviation
// u / sqrt(3)). The CPU (oneDNN, AMX) and CUDA kernels accumulate bf16 products in float32, so the
// float32 accumulation error (float32_tolerance.h) is 2^16 times smaller and neglected; the error
// is the rounding of what is stored in bf16: the weights, once each, and every activation a block
// writes, one after another. Per transformer block we count kRoundingsPerTransformerBlock such
// roundings on the path from input to output (the four weight matrices; the q/k/v, attention,
// projection, residual, LayerNorm, MLP hidden, GELU and MLP output activations). Each is a fresh,
// independent, zero-mean relative perturbation of the signal; LayerNorm and softmax keep a
// block's gain on relative errors near one, so the perturbations add in quadrature: after R of
// them the relative error has standard deviation u * sqrt(R / 3). As in float32_tolerance.h we
// allow lambda = 4 standard deviations (a bound each value exceeds with probability below 7e-4
// under the independence assumption).
//
// What "relative" is relative to: the scale of the vector a value belongs to, not the value
// itself (a logit near 0 inherits the absolute error of its neighbours through the shared
// projections). Checks compare |a - b| <= tol * max(1, scale), where scale is the spread of the
// float32 logits (or log-probabilities) of that row.
#pragma once

#include <cmath>

namespace elliptical::testing {

constexpr double kBfloat16UnitRoundoff = 0.00390625;  // 2^-8
constexpr double kBfloat16Lambda = 4.0;
constexpr int kRoundingsPerTransformerBlock = 14;

// Bound on |bf16 - fp32| / max(1, scale) for a value after `roundings` sequential roundings.
inline double Bfloat16Tolerance(int roundings) {
  return kBfloat16Lambda * kBfloat16UnitRoundoff * std::sqrt(roundings / 3.0);
}

// The same for a transformer of `blocks` blocks, the embedding and the head counted as one block
// more.
inline double TransformerBfloat16Tolerance(int blocks) {
  return Bfloat16Tolerance((blocks + 1) * kRoundingsPerTransformerBlock);
}

}  // namespace elliptical::testing
