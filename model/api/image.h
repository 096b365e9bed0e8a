// Decoded pixels handed to the models: 8-bit RGB, row-major, channels interleaved (HWC).
// Plain data, no LibTorch, so the server can fill it without compiling tensor headers.
#pragma once

#include <cstdint>
#include <vector>

namespace elliptical::model {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3
};

}  // namespace elliptical::model
