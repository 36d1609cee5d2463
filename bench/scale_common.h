// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the scale benchmarks: resident memory, mappings,
// descriptor limits, option parsing.
#ifndef EVCHAN_BENCH_SCALE_COMMON_H
#define EVCHAN_BENCH_SCALE_COMMON_H

#include <malloc.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

namespace scale_bench {

using Clock = std::chrono::steady_clock;

/// Polls `counter` every millisecond until it reaches `target`; false when
/// `patience` ran out first.
inline bool waitUntil(const std::atomic<long>& counter, long target, std::chrono::seconds patience) {
  const Clock::time_point deadline = Clock::now() + patience;
  while (counter.load() < target) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

inline double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// A "Name:   1234 kB" field of /proc/self/status, in KiB; -1 where unknown.
inline long statusKiB(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::size_t length = std::strlen(field);
  while (std::getline(status, line)) {
    if (line.compare(0, length, field) == 0 && line.size() > length && line[length] == ':') {
      return std::strtol(line.c_str() + length + 1, nullptr, 10);
    }
  }
  return -1;
}

/// Resident memory of this process (VmRSS), in KiB.
inline long residentKiB() { return statusKiB("VmRSS"); }

/// Heap bytes in use (malloc's view), 0 where glibc cannot tell.
inline std::size_t heapInUse() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#else
  return 0;
#endif
}

/// Lines of /proc/self/maps: the process's mappings (vm.max_map_count caps them).
inline long mappingCount() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  long count = 0;
  while (std::getline(maps, line)) ++count;
  return count;
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
inline long raiseDescriptorLimit() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) std::perror("setrlimit(RLIMIT_NOFILE)");
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<long>(limit.rlim_cur);
}

/// Parses a count such as "1000000", "1,000,000" or "1e6"; exits on garbage.
inline long parseCount(const char* option, const char* text) {
  std::string digits;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p != ',' && *p != '_') digits += *p;
  }
  char* end = nullptr;
  const double value = std::strtod(digits.c_str(), &end);
  if (digits.empty() || *end != '\0' || value < 1 || value > 1e9) {
    std::fprintf(stderr, "%s: not a positive count: %s\n", option, text);
    std::exit(2);
  }
  return static_cast<long>(value);
}

}  // namespace scale_bench

#endif  // EVCHAN_BENCH_SCALE_COMMON_H
