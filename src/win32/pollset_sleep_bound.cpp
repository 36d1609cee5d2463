// SPDX-License-Identifier: Apache-2.0
// Windows hosts: a bound under Wine, whose WSAPoll misses wake-ups.
#include "apr/pollset_sleep_bound.h"

#include <windows.h>

namespace evchan::detail {
namespace {

// Wine's ntdll exports its version; Windows' does not.
bool runningUnderWine() noexcept {
  const HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  return ntdll != nullptr && GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

}  // namespace

// Measured under Wine 8 (task_socket_test's many-connections echo, 250
// connections): about 1 run in 6 had a read wait as long as the sockets'
// timeout (5 s, then 15 s when that was raised) for data already sent.
// Polling again every 50 ms bounds that; an idle worker wakes 20 times a
// second, under Wine only.  Not seen on Windows itself (not measured
// there: see docs/windows.md).
std::chrono::microseconds pollsetSleepBound() noexcept {
  static const bool wine = runningUnderWine();
  return wine ? std::chrono::microseconds(50000) : std::chrono::microseconds::zero();
}

}  // namespace evchan::detail
