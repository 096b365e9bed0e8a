// Bounds on what one request may ask for, checked at the edge (request_validation.h) before any
// work or allocation. Every field a client controls has one; main.cc exposes them as flags.
#pragma once

#include <cstdint>

namespace elliptical::server {

struct RequestLimits {
  int max_model_name_bytes = 256;
  // Vision requests.
  int max_images_per_request = 64;
  int64_t max_image_pixels = 16ll << 20;    // one decoded image (4096 x 4096)
  int64_t max_request_pixels = 32ll << 20;  // all decoded images of one request
  // Decoded and prepared pixels held by all requests in progress (about 15 bytes each on the
  // CPU: RGB8 plus the normalised float32 tensor); beyond it calls are RESOURCE_EXHAUSTED.
  int64_t max_inflight_pixels = 64ll << 20;
  // Classify and Generate top_k: larger values are capped at the classes or the vocabulary;
  // beyond this bound a value is a client bug, not a request.
  uint32_t max_top_k = 1u << 20;
  // Generate.
  int64_t max_prompt_bytes = 256 << 10;
  int max_stop_sequences = 16;
  int max_stop_sequence_bytes = 256;
};

}  // namespace elliptical::server
