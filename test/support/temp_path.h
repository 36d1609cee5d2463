// SPDX-License-Identifier: Apache-2.0
// TempPath: a file path of a test's own under the temporary directory.
#ifndef EVCHAN_TEST_SUPPORT_TEMP_PATH_H
#define EVCHAN_TEST_SUPPORT_TEMP_PATH_H

#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace evchan::test {

/// A path under the temporary directory that nothing else uses, named
/// `prefix` plus a random number and a counter (random, not the pid: it is
/// portable, and suites run in parallel never collide).  Nothing is created;
/// whatever the test creates there is removed when the TempPath goes.
class TempPath {
 public:
  explicit TempPath(const std::string& prefix = "evchan-test-") {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             (prefix + std::to_string(std::random_device()()) + "-" + std::to_string(counter++)))
                .string();
  }
  ~TempPath() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;

  const std::string& str() const { return path_; }

 private:
  std::string path_;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_TEMP_PATH_H
