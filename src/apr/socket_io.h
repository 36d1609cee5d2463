// SPDX-License-Identifier: Apache-2.0
// Internal: the per-platform primitives under TcpSocket and TcpListener.
#ifndef EVCHAN_SRC_APR_SOCKET_IO_H
#define EVCHAN_SRC_APR_SOCKET_IO_H

#include <cstddef>
#include <system_error>

#include <apr_network_io.h>
#include <apr_portable.h>

#include <evchan/buffer.h>

#include "poller/deadline.h"

namespace evchan::detail {

/// What a wait waits for: data (or the end) to read, room to write, or
/// the end of a connect in progress (which Windows' select() reports as an
/// exception when it failed; elsewhere, and for writes, an exception would
/// be urgent data, which leaves the socket "ready" until it is read).
enum class Readiness { Readable, Writable, Connected };

/// Waits until `socket` is readable or writable (an error or hang-up
/// counts as ready: the next call reports it), or fails with timed_out at
/// `deadline`.  Interrupted waits are resumed.  The native POSIX layer
/// (src/posix/socket_wait.cpp) and the portable one (src/apr/) each define it.
std::error_code waitReady(apr_socket_t* socket, Readiness readiness, Deadline deadline) noexcept;
/// As above, and also returns (no error) when `wake`, if not null, becomes
/// readable: `woken` then says the socket itself is not ready.
std::error_code waitReady(apr_socket_t* socket, Readiness readiness, Deadline deadline, apr_socket_t* wake,
                          bool& woken) noexcept;

/// Receives up to `size` (> 0) bytes once, without waiting, from the
/// socket whose native descriptor is `fd` (a channel's watch keeps it, so
/// the hot path reads no apr_socket_t); `received` gets the count.  An
/// empty socket buffer is the would-block status and the peer's orderly
/// close Errc::end_of_stream.  `cutShort` says the host ended the read
/// early, so that a short one does not mean the buffer is empty: POSIX
/// ends a stream read after bytes that carried passed descriptors (which
/// it drops, MSG_CTRUNC) even with more bytes queued behind them.  Only a
/// socket that `passesDescriptors` (socketPassesDescriptors(), in
/// apr/descriptor_passing.h) can be cut short so: the others are
/// read with recv(2), whose call costs less than recvmsg(2)'s (about
/// 0.15 us less per 64-byte read over loopback TCP, measured).
/// Defined per host (src/posix/, src/win32/).
std::error_code receiveSome(apr_os_sock_t fd, bool passesDescriptors, void* data, std::size_t size,
                            std::size_t& received, bool& cutShort) noexcept;

/// Whether the socket `fd` stands at an urgent mark (TCP's MSG_OOB), where
/// a read that fails with the would-block status may have failed
/// spuriously: Linux's TCP recv() at the mark, before it has read
/// anything, fails with EAGAIN whenever a signal is pending for the
/// calling thread (any signal with a handler, or an io_uring completion's
/// notification for a thread that submitted to a ring), though bytes are
/// queued after the mark; and no readiness report comes for them again.
/// One ioctl: only for a socket that has had urgent data.  False where the
/// host has no such behaviour (Windows) or cannot tell.
/// Defined per host (src/posix/, src/win32/).
bool atUrgentMark(apr_os_sock_t fd) noexcept;

/// receiveSome() with the calling thread's signals blocked for the call,
/// so that none can be pending in it (a signal that comes meanwhile is
/// delivered when it returns): for a read at an urgent mark
/// (atUrgentMark()).  Three system calls instead of one.
/// Defined per host (src/posix/, src/win32/).
std::error_code receiveSomeSignalsBlocked(apr_os_sock_t fd, bool passesDescriptors, void* data, std::size_t size,
                                          std::size_t& received, bool& cutShort) noexcept;

/// Sends up to `size` bytes once without waiting and without raising
/// SIGPIPE; `sent` receives the count.  A full send buffer is reported as
/// the would-block status.  Defined per host (src/posix/, src/win32/).
std::error_code sendSome(apr_socket_t* socket, const void* data, std::size_t size,
                         std::size_t& sent) noexcept;

/// Sends from the pieces `buffers[0..count)` in order, once, without
/// waiting and without raising SIGPIPE: one system call (POSIX sendmsg
/// with MSG_NOSIGNAL, Windows WSASend) for as many pieces as the host
/// takes at once (IOV_MAX on POSIX; the rest is for a later call).  `sent`
/// receives the count.  Leading empty pieces are skipped, so a non-zero
/// total always sends or fails; the pieces were checked by the caller.
/// `offered`, when given, receives how many bytes the call offered the
/// host (fewer than the total when the piece limit cut the list): a
/// `sent` short of it, not of the total, means the socket's buffer filled.
/// Defined per host (src/posix/, src/win32/).
std::error_code sendGather(apr_socket_t* socket, const ConstBuffer* buffers, std::size_t count,
                           std::size_t& sent, std::size_t* offered = nullptr) noexcept;
/// sendGather() on the native descriptor `fd` (a watch's).
std::error_code sendGather(apr_os_sock_t fd, const ConstBuffer* buffers, std::size_t count, std::size_t& sent,
                           std::size_t* offered = nullptr) noexcept;

/// After a non-blocking connect has become writable: the connect's result.
std::error_code pendingConnectResult(apr_socket_t* socket) noexcept;

/// Sets a listening socket's address options before bind(): a restarted
/// server can bind its port while old connections linger in TIME_WAIT,
/// yet a second socket binding the same port fails with address_in_use.
/// POSIX says that with SO_REUSEADDR; on Windows SO_REUSEADDR would let
/// the second socket take the port, so it is SO_EXCLUSIVEADDRUSE there.
apr_status_t setListenAddressOptions(apr_socket_t* socket) noexcept;

/// SO_LINGER on with a zero time: closing the socket then drops what is
/// unsent and sends the peer a reset (RST) instead of the orderly end.
apr_status_t setResetOnClose(apr_socket_t* socket) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_SOCKET_IO_H
