// How far apart two float32 evaluations of one network may be when they differ only in the
// order of their sums, and therefore the tolerance of every batch-invariance check.
//
// In exact arithmetic a row's output does not depend on the batch around it. In float32 it may:
// the batch size, the row's position and the padding of a sequence change how the CPU kernels
// tile and vectorise their reductions (GEMM blocking, the vector width of AVX2 against AVX-512,
// Intel's against AMD's code paths in oneDNN/MKL, a masked mean over 7 or over 12 positions).
// Each evaluation is then an exact result perturbed by rounding, and the two perturbations differ.
//
// The argument. With unit roundoff u = 2^-24, an n-term float32 sum carries a relative error of at
// most lambda * sqrt(n) * u with probability at least 1 - 2 exp(-lambda^2 / 2) when rounding
// errors behave as independent, zero-mean variables (Higham and Mary, "A new approach to
// probabilistic rounding error analysis", SIAM J. Sci. Comput. 2019); the worst case, n * u, is
// never approached by blocked kernels. We take lambda = 4 (each bound fails with probability
// below 7e-4; the test compares thousands of values, so a looser lambda would flake and a tighter
// one would be the worst case). A network applies R reductions one after another; the normalised
// activations of a transformer (LayerNorm, softmax) keep each step's relative error from being
// amplified by more than a small factor, so errors add: R * lambda * sqrt(n) * u for the longest
// reduction length n. Two evaluations each carry such an error: twice that bounds their gap.
// Compared as |a - b| <= tol * max(1, |b|) (tensor_expect.h).
//
// Where the kernels are the same (the same input in a batch of the same shape, computed again),
// float32 gives the same bits, and those checks are exact (EXPECT_TRUE(torch::equal(...))).
#pragma once

#include <cmath>
#include <cstdint>

namespace elliptical::testing {

constexpr double kFloat32UnitRoundoff = 5.9604644775390625e-08;  // 2^-24
constexpr double kRoundingLambda = 4.0;

// Reductions applied one after another per transformer block: q/k/v projections, scores,
// softmax normaliser, weighted values, output projection, the elliptical metric's mean,
// two MLP matmuls and two LayerNorms (mean and variance counted once each).
constexpr int kReductionsPerTransformerBlock = 10;

// Bound on |a - b| / max(1, |b|) for two evaluations that differ only in summation order.
inline double ReorderTolerance(int sequential_reductions, int64_t longest_reduction) {
  return 2.0 * sequential_reductions * kRoundingLambda *
         std::sqrt(static_cast<double>(longest_reduction)) * kFloat32UnitRoundoff;
}

// The same for a transformer of `blocks` blocks, counting the embedding and the head as one
// block more; `longest_reduction` is the largest of the width, the MLP width and the tokens.
inline double TransformerReorderTolerance(int blocks, int64_t longest_reduction) {
  return ReorderTolerance((blocks + 1) * kReductionsPerTransformerBlock, longest_reduction);
}

}  // namespace elliptical::testing
