// What the suites expect of the host that differs between hosts.
#ifndef EVCHAN_TEST_SUPPORT_HOST_BEHAVIOUR_H
#define EVCHAN_TEST_SUPPORT_HOST_BEHAVIOUR_H

#include <string>

namespace evchan::test {

/// The host's own code for "address already in use", as APR_FROM_OS_ERROR
/// takes it: errno EADDRINUSE on POSIX, WSAEADDRINUSE on Windows.
int addressInUseOsError();

/// Empty where closing a socket that still has unread data resets the
/// connection (the peer's next read fails with connection_reset);
/// otherwise why that cannot be tested here.
std::string whyCloseWithUnreadDataSendsNoReset();

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_HOST_BEHAVIOUR_H
