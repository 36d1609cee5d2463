// SPDX-License-Identifier: Apache-2.0
// Host behaviour the suites expect on POSIX hosts.
#include "support/host_behaviour.h"

#include <time.h>

#include <cerrno>

namespace evchan::test {

int addressInUseOsError() { return EADDRINUSE; }
int outOfSocketsOsError() { return EMFILE; }

std::string whyCloseWithUnreadDataSendsNoReset() { return ""; }

int aprPollsetEchoConnections() { return 1000; }

std::string whyWritingFarBeyondTheEndIsCostly() { return ""; }

std::string whyAcceptExBesideAPlainAcceptMayFail() { return ""; }  // no AcceptEx here

std::string whyAComputingWorkerMayBePresumedBlocked() {
#ifdef __linux__
  return "";
#else
  return "no probe of a worker's kernel state on this host: a worker past the grace period is presumed blocked";
#endif
}

double threadCpuSeconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec now{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) != 0) return -1;
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
#else
  return -1;
#endif
}

}  // namespace evchan::test
