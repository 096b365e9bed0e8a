// A fresh directory per use, removed with its contents when it goes out of scope. CTest runs
// each gtest case as its own process, in parallel, so a fixed name under ::testing::TempDir()
// would be shared by concurrent cases that overwrite each other's files.
#pragma once

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include <string>

namespace elliptical::testing {

class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix = "elliptical-test") {
    std::string pattern = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~ScopedTempDir() {
    // ELLIPTICAL_KEEP_TEST_DIRS keeps the logs of servers a failing test started.
    if (path_.empty() || std::getenv("ELLIPTICAL_KEEP_TEST_DIRS") != nullptr) return;
    // nftw, not std::filesystem::remove_all: libtorch.so exports its own copy of the latter,
    // which binds first in test binaries that link LibTorch and crashes there.
    nftw(path_.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  // Empty when the directory could not be made; callers' file opens then fail visibly.
  const std::string& path() const { return path_; }

 private:
  static int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
    remove(path);
    return 0;
  }

  std::string path_;
};

}  // namespace elliptical::testing
