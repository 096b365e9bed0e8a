// Process-wide LibTorch settings, behind a header free of LibTorch.
#pragma once

#include <cstdint>
#include <string>

namespace elliptical::model {

// Threads one CPU forward pass may use (LibTorch's intra-op pool). 0 keeps LibTorch's default
// (one per core).
void SetComputeThreads(int threads);

// The same for the calling thread alone, so that model instances on their own threads each get
// their share of the cores (OpenMP keeps the thread count per thread). Call it before the
// thread's first forward.
void SetComputeThreadsForThisThread(int threads);

// The calling thread's compute threads for its next forwards, cheap enough to call per batch:
// it sets OpenMP's and MKL's per-thread counts only. (torch::set_num_threads also empties
// oneDNN's primitive cache, which a bf16 model on AMX then rebuilds for milliseconds.)
void SetBatchComputeThreads(int threads);

// Makes a stream of LibTorch's pool on `device` (ModelDescription::device: "cuda:0") the calling
// thread's current stream, so the copies, kernels and copy-back of the batches this thread runs
// are ordered on that stream alone: a model instance's copy-back then waits for its own work,
// not for another instance's (LibTorch's current stream is per thread; on the shared default
// stream every instance waited for all). Work queued on the device's default stream before
// (loading weights, clearing caches) is finished first: pool streams do not wait for it. Call it
// at the start of each thread that runs a model's batches. A no-op for "cpu"; should the call
// fail, the thread stays on the default stream, which is slower but as correct.
void UseOwnStreamOnThisThread(const std::string& device);

// Keeps freed activation buffers in the process instead of returning them to the kernel after
// every forward: glibc otherwise serves tensors above its mmap threshold with fresh mappings
// whose pages fault in again each time (measured: DeiT-Tiny forward 170 -> 136 ms, one thread).
// The cost is a resident size that stays at its peak. Call once at start.
void TuneCpuAllocator();

// "LibTorch 2.11.0, CUDA available: 1 device(s)" and the like, for the start-up log.
std::string RuntimeSummary();

// LibTorch's version, for the build-info metric.
std::string TorchVersion();

// Bytes held by tensors on every CUDA device (LibTorch's caching allocator); 0 without CUDA.
int64_t DeviceMemoryAllocatedBytes();

}  // namespace elliptical::model
