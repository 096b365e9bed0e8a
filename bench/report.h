// How the benchmark binaries hand over their results: JSON to a file, or to stdout.
#pragma once

#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

namespace elliptical::bench {

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
