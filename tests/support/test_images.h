// A deterministic RGB8 test image in which every byte value appears (i * 97 + seed walks all
// residues mod 256 in 256 steps), for the tests that compare preprocessing paths byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/api/image.h"

namespace elliptical::testing {

inline model::RgbImage SyntheticImage(int width, int height, int seed) {
  model::RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 97 + seed);
  return image;
}

}  // namespace elliptical::testing
