// SPDX-License-Identifier: Apache-2.0
// What the suites expect of the host that differs between hosts.
#ifndef EVCHAN_TEST_SUPPORT_HOST_BEHAVIOUR_H
#define EVCHAN_TEST_SUPPORT_HOST_BEHAVIOUR_H

#include <string>

namespace evchan::test {

/// The host's own code for "address already in use", as APR_FROM_OS_ERROR
/// takes it: errno EADDRINUSE on POSIX, WSAEADDRINUSE on Windows.
int addressInUseOsError();
/// The host's own code for "no descriptor left for a new socket", as
/// APR_FROM_OS_ERROR takes it: errno EMFILE on POSIX, WSAEMFILE on Windows.
int outOfSocketsOsError();

/// Empty where closing a socket that still has unread data resets the
/// connection (the peer's next read fails with connection_reset);
/// otherwise why that cannot be tested here.
std::string whyCloseWithUnreadDataSendsNoReset();

/// How many connections the many-connections echo test runs through the
/// apr_pollset backend: 1000 where APR's pollset is epoll or kqueue; fewer
/// on Windows, where it is WSAPoll, which is handed the whole set on every
/// wait (each restart after a wake-up costs time in proportion to the set,
/// so the test's cost grows with the square of the connections).
int aprPollsetEchoConnections();

/// Empty where a write far beyond a file's end leaves a hole (the
/// POSIX file systems the suites run on, Wine over them); otherwise why
/// a test should not make one (Windows' NTFS writes the gap's zeros).
std::string whyWritingFarBeyondTheEndIsCostly();
/// Empty where an overlapped AcceptEx (the iocp backend's accept) and a
/// plain accept() on another thread may share a listener; otherwise why a
/// test should not race them: under Wine the AcceptEx then sometimes
/// completes with ERROR_NOT_READY (1 run of 10 of such a test).
std::string whyAcceptExBesideAPlainAcceptMayFail();
/// Empty where the stuck-worker monitor reads a worker's kernel state
/// (Linux's /proc) and so tells a computing worker from a blocked one;
/// otherwise why a test cannot expect a computing item to be counted in
/// runnablePastGrace rather than get a spare thread (every worker past
/// the grace period is then presumed blocked).
std::string whyAComputingWorkerMayBePresumedBlocked();

/// Seconds of CPU time, user and kernel, that the calling thread has used:
/// a wait that sleeps uses next to none, one that spins as much as the
/// wall clock.  Negative where the host cannot tell.
double threadCpuSeconds();

#if defined(_WIN32)
/// Whether the suite runs under Wine (CI's Windows host) rather than on
/// Windows: Wine's ntdll exports its version.
bool runningUnderWine();
#endif

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_HOST_BEHAVIOUR_H
