// Resizing 8-bit RGB images exactly as Pillow's Image.resize does with BILINEAR and BICUBIC, so
// that a model trained or evaluated through PIL (timm, torchvision on PIL images) sees the same
// bytes here. Written from Pillow's documented algorithm (libImaging/Resample.c), not its code:
//
//   - separable: a horizontal pass into an 8-bit image, then a vertical pass; a pass is skipped
//     when that side keeps its size;
//   - per output pixel, a kernel centred on the source point (i + 0.5) * scale, with its support
//     widened by the downscale factor (antialiasing), weights normalised to sum 1;
//   - weights in fixed point (22 fractional bits, rounded away from zero), sums started at half a
//     unit, shifted back and clipped to [0, 255] after each pass.
//
// The arithmetic follows Pillow's double-precision expressions operation for operation; the file
// is built with floating-point contraction off (no fused multiply-add), as Pillow's x86-64 wheels.
#pragma once

#include "model/api/image.h"

namespace elliptical::model {

enum class PilFilter { kBilinear, kBicubic };

// The window [left, left + width) x [top, top + height) of `image` resized to
// resized_width x resized_height. Every output pixel depends on its own coordinates only, so the
// window is computed alone and equals cropping the full resize, byte for byte; only the window's
// work is done. The window must lie inside the resized image; `image` must be consistent
// (width * height * 3 pixels, both sides positive).
RgbImage PilResizeWindow(const RgbImage& image, int resized_width, int resized_height, int left,
                         int top, int width, int height, PilFilter filter);

// Image.resize((width, height), filter) on the whole image.
inline RgbImage PilResize(const RgbImage& image, int width, int height, PilFilter filter) {
  return PilResizeWindow(image, width, height, 0, 0, width, height, filter);
}

}  // namespace elliptical::model
