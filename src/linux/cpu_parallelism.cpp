// SPDX-License-Identifier: Apache-2.0
// CPU parallelism on Linux: sched_getaffinity capped by cgroup v2 cpu.max.
#include "apr/cpu_parallelism.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>

namespace evchan::detail {
namespace {

int affinityCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  return CPU_COUNT(&set);
}

// "max 100000" means no quota; "150000 100000" allows 1.5 CPUs: round up.
int quotaFromCpuMax(const std::string& path) {
  std::ifstream file(path);
  std::string quota;
  long long period = 0;
  if (!(file >> quota >> period) || quota == "max" || period <= 0) return 0;
  try {
    const long long limit = std::stoll(quota);
    return limit > 0 ? static_cast<int>((limit + period - 1) / period) : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

// The tightest cpu.max along the process's cgroup v2 path up to the root.
int cgroupQuota() {
  std::ifstream cgroups("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(cgroups, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty()) return 0;
  int tightest = 0;
  for (;;) {
    const int quota = quotaFromCpuMax("/sys/fs/cgroup" + path + "/cpu.max");
    if (quota > 0 && (tightest == 0 || quota < tightest)) tightest = quota;
    if (path.empty() || path == "/") break;
    const std::string::size_type slash = path.rfind('/');
    path = slash == std::string::npos || slash == 0 ? std::string() : path.substr(0, slash);
  }
  return tightest;
}

}  // namespace

int detectCpuParallelism() noexcept {
  int cpus = affinityCount();
  if (cpus <= 0) cpus = static_cast<int>(std::thread::hardware_concurrency());
  try {
    if (const int quota = cgroupQuota(); quota > 0) cpus = cpus > 0 ? std::min(cpus, quota) : quota;
  } catch (...) {
    // An unreadable cgroup file system leaves the affinity figure.
  }
  return std::max(cpus, 1);
}

}  // namespace evchan::detail
