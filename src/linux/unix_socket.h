// SPDX-License-Identifier: Apache-2.0
// Internal: the AF_UNIX plumbing under ShmStream and ShmListener: names,
// descriptor passing, doorbells, and waiting for a descriptor.
#ifndef EVCHAN_SRC_LINUX_UNIX_SOCKET_H
#define EVCHAN_SRC_LINUX_UNIX_SOCKET_H

#include <poll.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

#include <evchan/tcp_socket.h>

#include "poller/deadline.h"

namespace evchan::detail {

/// A listening, non-blocking AF_UNIX stream socket on `name` ("@x" is the
/// abstract name "x", anything else a path); -1 with `ec` set on error.
int listenUnix(const std::string& name, int backlog, std::error_code& ec) noexcept;

/// A non-blocking AF_UNIX stream socket connected to `name`; waits (a
/// full backlog) at most until `deadline`.  -1 with `ec` set on error.
int connectUnix(const std::string& name, Deadline deadline, std::error_code& ec) noexcept;

/// One accept4() without waiting: the connection, or -1 with `ec` set
/// (resource_unavailable_try_again when none is queued).
int acceptUnix(int listener, std::error_code& ec) noexcept;

/// Sends `size` bytes with `count` descriptors attached (SCM_RIGHTS), in
/// one message that must fit the (empty) send buffer.
std::error_code sendWithDescriptors(int socket, const void* data, std::size_t size, const int* fds,
                                    int count) noexcept;

/// Receives exactly `size` bytes and the descriptors attached, waiting
/// until `deadline`.  Every descriptor received is closed on error; a
/// message without exactly `count` descriptors is bad_message.
std::error_code receiveWithDescriptors(int socket, void* data, std::size_t size, int* fds, int count,
                                       Deadline deadline) noexcept;

/// poll(2) for `events` on `fd` until `deadline`: timed_out when it passes.
/// Hang-ups and errors count as ready.
std::error_code pollUntil(int fd, short events, Deadline deadline) noexcept;

/// poll(2) on `count` entries until one is ready (their revents say which)
/// or `deadline` passes (timed_out).
std::error_code pollAnyUntil(pollfd* entries, std::size_t count, Deadline deadline) noexcept;

/// The credentials the kernel recorded for the peer of the connected
/// AF_UNIX socket `fd` (SO_PEERCRED: its process, user and group when it
/// connected, or made the pair); false if there are none.
bool peerCredentials(int fd, ucred& credentials) noexcept;

/// True if `fd` is one end of an AF_UNIX stream socketpair(2): a stream
/// socket, not listening, connected, neither end bound to a name.
bool isSocketPairEnd(int fd) noexcept;

/// The inode number identifying the socket `fd`; 0 if it is none.
std::uint64_t socketInode(int fd) noexcept;

/// The inode of the socket at the other end of the AF_UNIX socket `fd`,
/// asked of the kernel's socket diagnostics (unix_diag); 0 when it cannot
/// tell (a kernel without unix_diag, a sandbox without netlink).
std::uint64_t unixPeerInode(int fd) noexcept;

/// True when unixPeerInode() works on this kernel.
bool kernelTellsUnixPeers() noexcept;

/// Wakes the peer sleeping on the other end of `socket`: one byte, never
/// waiting and never raising SIGPIPE.  A full socket already holds wake-ups
/// and a dead peer is found by its own waits, so failures are ignored.
void ringBell(int socket) noexcept;


}  // namespace evchan::detail

#endif  // EVCHAN_SRC_LINUX_UNIX_SOCKET_H
