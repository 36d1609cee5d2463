// Host behaviour the suites expect on POSIX hosts.
#include "support/host_behaviour.h"

#include <cerrno>

namespace evchan::test {

int addressInUseOsError() { return EADDRINUSE; }

std::string whyCloseWithUnreadDataSendsNoReset() { return ""; }

}  // namespace evchan::test
