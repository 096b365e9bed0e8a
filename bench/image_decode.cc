// Decode time of image files: the server's decoder (server/input/: libjpeg-turbo, libpng,
// libwebp) against stb_image 2.27, the decoder it replaced, from Debian's libstb (a bench-only
// dependency: built when pkg-config finds `stb`, ELLIPTICAL_BENCH_STB). Both run in this one
// process, alternating in every round, on one thread, from bytes in memory to 8-bit RGB.
//
//   image_decode --rounds=7 --min_ms=150 --out=report.json FILE...
//
// Per file and decoder: the median over rounds of the mean time per decode within a round (a
// round decodes the file back to back for at least --min_ms of CPU time), as this thread's CPU
// time (what the comparison uses) and as wall time, and the fastest round's CPU time.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/report.h"
#include "server/input/image_decoder.h"

#ifdef ELLIPTICAL_BENCH_STB
#include <stb_image.h>  // compiled into Debian's libstb; no STB_IMAGE_IMPLEMENTATION here
#endif

ABSL_FLAG(int, rounds, 7, "rounds per file; each decoder runs once per round, in alternating order");
ABSL_FLAG(double, min_ms, 150, "least CPU time a decoder decodes back to back within a round");
ABSL_FLAG(std::string, out, "", "where to write the JSON report (stdout if empty)");

namespace {

using Clock = std::chrono::steady_clock;

// One decode of `bytes` to RGB; the pixel bytes' sum keeps the work from being optimised away.
using Decoder = uint64_t (*)(const std::string& bytes);

uint64_t DecodeNew(const std::string& bytes) {
  auto image = elliptical::server::DecodeImage(bytes, {});
  if (!image.ok()) {
    std::cerr << "decode failed: " << image.status() << "\n";
    std::exit(1);
  }
  return image->pixels.size() + image->pixels[image->pixels.size() / 2];
}

#ifdef ELLIPTICAL_BENCH_STB
uint64_t DecodeStb(const std::string& bytes) {
  int w = 0, h = 0, channels = 0;
  stbi_uc* pixels = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                          static_cast<int>(bytes.size()), &w, &h, &channels, 3);
  if (!pixels) return 0;  // a format stb lacks (WebP): reported as not measured
  const uint64_t size = static_cast<uint64_t>(w) * h * 3;
  const uint64_t sum = size + pixels[size / 2];
  stbi_image_free(pixels);
  return sum;
}
#endif

// This thread's CPU time in seconds: on a shared machine the wall clock also counts the time
// other processes hold the core, and that share changes from round to round.
double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

struct RoundTime {
  double cpu = 0, wall = 0;  // seconds per decode
};

// Mean time per decode over at least `min_seconds` of this thread's CPU time, decoding back to back.
RoundTime TimeRound(Decoder decode, const std::string& bytes, double min_seconds, uint64_t* sink) {
  int64_t n = 0;
  const double cpu_start = ThreadCpuSeconds();
  const auto wall_start = Clock::now();
  double cpu = 0;
  do {
    *sink += decode(bytes);
    ++n;
    cpu = ThreadCpuSeconds() - cpu_start;
  } while (cpu < min_seconds);
  const double wall = std::chrono::duration<double>(Clock::now() - wall_start).count();
  return {cpu / static_cast<double>(n), wall / static_cast<double>(n)};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> files = absl::ParseCommandLine(argc, argv);
  files.erase(files.begin());
  if (files.empty()) {
    std::cerr << "usage: image_decode [--rounds=N] [--min_ms=MS] [--out=FILE] IMAGE...\n";
    return 2;
  }
  struct Named {
    const char* name;
    Decoder decode;
  };
  std::vector<Named> decoders = {{"libjpeg-turbo/libpng/libwebp", DecodeNew}};
#ifdef ELLIPTICAL_BENCH_STB
  decoders.push_back({"stb_image", DecodeStb});
#endif
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const double min_seconds = absl::GetFlag(FLAGS_min_ms) / 1000;
  nlohmann::json report = {{"stb_available", decoders.size() > 1}, {"results", nlohmann::json::array()}};
  uint64_t sink = 0;
  for (const char* path : files) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto size = elliptical::server::ReadImageSize(bytes);
    if (!size.ok()) {
      std::cerr << path << ": " << size.status() << "\n";
      return 1;
    }
    std::vector<bool> works(decoders.size());
    for (size_t d = 0; d < decoders.size(); ++d) works[d] = decoders[d].decode(bytes) != 0;  // and warm up
    std::vector<std::vector<double>> cpu(decoders.size()), wall(decoders.size());
    for (int r = 0; r < rounds; ++r) {
      for (size_t i = 0; i < decoders.size(); ++i) {
        const size_t d = r % 2 ? decoders.size() - 1 - i : i;  // A B, B A, ...
        if (!works[d]) continue;
        const RoundTime t = TimeRound(decoders[d].decode, bytes, min_seconds, &sink);
        cpu[d].push_back(t.cpu);
        wall[d].push_back(t.wall);
      }
    }
    for (size_t d = 0; d < decoders.size(); ++d) {
      nlohmann::json row = {{"file", std::string(path).substr(std::string(path).rfind('/') + 1)},
                            {"bytes", bytes.size()}, {"width", size->width}, {"height", size->height},
                            {"decoder", decoders[d].name}, {"rounds", cpu[d].size()}};
      if (!cpu[d].empty()) {
        row["median_cpu_ms"] = Median(cpu[d]) * 1e3;
        row["best_cpu_ms"] = *std::min_element(cpu[d].begin(), cpu[d].end()) * 1e3;
        row["median_wall_ms"] = Median(wall[d]) * 1e3;
      }
      report["results"].push_back(row);
      std::cerr << row.dump() << "\n";
    }
  }
  report["checksum"] = sink;
  return elliptical::bench::WriteReport(report, absl::GetFlag(FLAGS_out));
}
