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

}  // namespace evchan::test
