// How the benchmark binaries hand over their results: JSON to a file, or to stdout.
#pragma once

#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

namespace elliptical::bench {

// The CPU's model name from /proc/cpuinfo: every benchmark names the machine it ran on.
inline std::string CpuName() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

inline int WriteReport(const nlohmann::json& report, const std::string& path) {
  if (path.empty()) {
    std::cout << report.dump(1) << "\n";
    return 0;
  }
  std::ofstream out(path);
  out << report.dump(1) << "\n";
  if (!out) {
    std::cerr << "cannot write " << path << "\n";
    return 1;
  }
  return 0;
}

}  // namespace elliptical::bench
