// A server-wide budget of decoded pixels: each vision request holds a lease on the pixels it
// decoded from the moment it decodes them until its response is written, so the memory that
// requests in progress hold together is bounded however many arrive at once (a 65 KB PNG can
// declare 8192 x 8192 pixels).
//
// Thread-safety: Acquire may be called from any thread; a Lease returns its pixels once.
#pragma once

#include <cstdint>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace elliptical::server {

class PixelBudget {
 public:
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept : budget_(std::exchange(other.budget_, nullptr)), pixels_(other.pixels_) {}
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        Release();
        budget_ = std::exchange(other.budget_, nullptr);
        pixels_ = other.pixels_;
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Release(); }

    void Release() {
      if (budget_) std::exchange(budget_, nullptr)->Return(pixels_);
    }

   private:
    friend class PixelBudget;
    Lease(PixelBudget* budget, int64_t pixels) : budget_(budget), pixels_(pixels) {}
    PixelBudget* budget_ = nullptr;
    int64_t pixels_ = 0;
  };

  explicit PixelBudget(int64_t limit) : limit_(limit) {}

  // RESOURCE_EXHAUSTED when `pixels` do not fit beside those already leased: retry later.
  absl::StatusOr<Lease> Acquire(int64_t pixels) {
    absl::MutexLock lock(&mu_);
    if (pixels > limit_ - in_use_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the server is decoding ", in_use_, " pixels for other requests and this one needs ",
          pixels, "; the server-wide limit is ", limit_, ": retry later with backoff"));
    }
    in_use_ += pixels;
    return Lease(this, pixels);
  }

  int64_t in_use() const {
    absl::MutexLock lock(&mu_);
    return in_use_;
  }

 private:
  void Return(int64_t pixels) {
    absl::MutexLock lock(&mu_);
    in_use_ -= pixels;
  }

  const int64_t limit_;
  mutable absl::Mutex mu_;
  int64_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace elliptical::server
