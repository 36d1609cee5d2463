// SPDX-License-Identifier: Apache-2.0
// Host behaviour the suites expect on POSIX hosts.
#include "support/host_behaviour.h"

#include <cerrno>

namespace evchan::test {

int addressInUseOsError() { return EADDRINUSE; }

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

}  // namespace evchan::test
