#include "model/nets/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace elliptical::model {

namespace {

// Fixed point of the weights: 32-bit sums of 8-bit pixels times weights that may exceed 1 or go
// negative keep two bits of headroom, so 32 - 8 - 2 fractional bits.
constexpr int kFractionBits = 22;
constexpr double kOne = 1 << kFractionBits;

// Triangle, support 1.
double TriangleKernel(double x) {
  const double d = x < 0.0 ? -x : x;
  return d < 1.0 ? 1.0 - d : 0.0;
}

// Keys' cubic convolution with a = -0.5, support 2. The expressions keep Pillow's order of
// operations so every double rounds the same way.
double CubicKernel(double x) {
  constexpr double a = -0.5;
  const double d = x < 0.0 ? -x : x;
  if (d < 1.0) return ((a + 2.0) * d - (a + 3.0)) * d * d + 1;
  if (d < 2.0) return (((d - 5) * d + 8) * d - 4) * a;
  return 0.0;
}

// For output positions [begin, begin + count) of one axis resized from in_size to out_size: the
// first source index each reads, how many, and their fixed-point weights.
struct AxisTaps {
  std::vector<int> first;
  std::vector<int> length;
  std::vector<size_t> offset;  // into weights
  std::vector<int32_t> weights;
};

AxisTaps ComputeTaps(int in_size, int out_size, int begin, int count, PilFilter filter) {
  const bool cubic = filter == PilFilter::kBicubic;
  // Pillow takes the source span as a float box (0, in_size) before dividing in double.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double widen = std::max(scale, 1.0);  // antialiasing: the kernel stretches when shrinking
  const double support = (cubic ? 2.0 : 1.0) * widen;
  const double step = 1.0 / widen;

  AxisTaps taps;
  taps.first.reserve(count);
  taps.length.reserve(count);
  taps.offset.reserve(count);
  std::vector<double> w;
  for (int i = begin; i < begin + count; ++i) {
    const double centre = (i + 0.5) * scale;
    // Truncation after adding one half, as Pillow rounds the window's ends.
    const int lo = std::max(static_cast<int>(centre - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(centre + support + 0.5), in_size);
    const int n = std::max(hi - lo, 0);
    w.assign(n, 0.0);
    double total = 0.0;
    for (int t = 0; t < n; ++t) {
      const double x = (static_cast<double>(t + lo) - centre + 0.5) * step;
      w[t] = cubic ? CubicKernel(x) : TriangleKernel(x);
      total += w[t];
    }
    taps.first.push_back(lo);
    taps.length.push_back(n);
    taps.offset.push_back(taps.weights.size());
    for (int t = 0; t < n; ++t) {
      const double v = total != 0.0 ? w[t] / total : w[t];
      // Rounded half away from zero.
      taps.weights.push_back(static_cast<int32_t>(v < 0 ? -0.5 + v * kOne : 0.5 + v * kOne));
    }
  }
  return taps;
}

uint8_t ToByte(int64_t sum) {
  const int64_t v = sum >> kFractionBits;  // arithmetic: floors negative sums
  return static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255));
}

constexpr int64_t kHalf = int64_t{1} << (kFractionBits - 1);

}  // namespace

RgbImage PilResizeWindow(const RgbImage& image, int resized_width, int resized_height, int left,
                         int top, int width, int height, PilFilter filter) {
  const bool horizontal = resized_width != image.width;
  const bool vertical = resized_height != image.height;

  // The source rows the window's output rows read (all of them when the height is kept).
  AxisTaps rows;
  int row_begin = top, row_end = top + height;
  if (vertical) {
    rows = ComputeTaps(image.height, resized_height, top, height, filter);
    row_begin = image.height;
    row_end = 0;
    for (int j = 0; j < height; ++j) {
      row_begin = std::min(row_begin, rows.first[j]);
      row_end = std::max(row_end, rows.first[j] + rows.length[j]);
    }
    if (row_end < row_begin) row_end = row_begin;
  }

  // Horizontal pass: the window's columns of those rows, rounded to 8 bits.
  const int mid_rows = row_end - row_begin;
  std::vector<uint8_t> mid(static_cast<size_t>(mid_rows) * width * 3);
  if (horizontal) {
    const AxisTaps cols = ComputeTaps(image.width, resized_width, left, width, filter);
    for (int r = 0; r < mid_rows; ++r) {
      const uint8_t* src = image.pixels.data() + static_cast<size_t>(row_begin + r) * image.width * 3;
      uint8_t* dst = mid.data() + static_cast<size_t>(r) * width * 3;
      for (int i = 0; i < width; ++i) {
        const int32_t* k = cols.weights.data() + cols.offset[i];
        const uint8_t* p = src + static_cast<size_t>(cols.first[i]) * 3;
        int64_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
        for (int t = 0; t < cols.length[i]; ++t) {
          s0 += int64_t{p[3 * t + 0]} * k[t];
          s1 += int64_t{p[3 * t + 1]} * k[t];
          s2 += int64_t{p[3 * t + 2]} * k[t];
        }
        dst[3 * i + 0] = ToByte(s0);
        dst[3 * i + 1] = ToByte(s1);
        dst[3 * i + 2] = ToByte(s2);
      }
    }
  } else {
    for (int r = 0; r < mid_rows; ++r) {
      const uint8_t* src = image.pixels.data() +
                           (static_cast<size_t>(row_begin + r) * image.width + left) * 3;
      std::copy(src, src + static_cast<size_t>(width) * 3,
                mid.data() + static_cast<size_t>(r) * width * 3);
    }
  }

  RgbImage out;
  out.width = width;
  out.height = height;
  if (!vertical) {
    out.pixels = std::move(mid);
    return out;
  }
  // Vertical pass over the 8-bit intermediate.
  out.pixels.resize(static_cast<size_t>(width) * height * 3);
  const size_t row_bytes = static_cast<size_t>(width) * 3;
  std::vector<int64_t> sums(row_bytes);
  for (int j = 0; j < height; ++j) {
    std::fill(sums.begin(), sums.end(), kHalf);
    const int32_t* k = rows.weights.data() + rows.offset[j];
    for (int t = 0; t < rows.length[j]; ++t) {
      const uint8_t* src = mid.data() + static_cast<size_t>(rows.first[j] - row_begin + t) * row_bytes;
      for (size_t c = 0; c < row_bytes; ++c) sums[c] += int64_t{src[c]} * k[t];
    }
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(j) * row_bytes;
    for (size_t c = 0; c < row_bytes; ++c) dst[c] = ToByte(sums[c]);
  }
  return out;
}

}  // namespace elliptical::model
