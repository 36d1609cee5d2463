// SPDX-License-Identifier: Apache-2.0
// Internal: AF_UNIX stream sockets: names (paths, Linux's "@abstract"
// names), listening with the stale-file rule, connecting, accepting,
// descriptor passing (SCM_RIGHTS), peer credentials, doorbells, and
// waiting for a descriptor.  Under UnixSocket, ShmStream and ShmListener.
#ifndef EVCHAN_SRC_POSIX_UNIX_SOCKET_H
#define EVCHAN_SRC_POSIX_UNIX_SOCKET_H

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

#include "poller/deadline.h"

struct apr_pool_t;  // <apr_pools.h>, which the tests cannot see

namespace evchan::detail {

/// The most descriptors one message carries (Linux's SCM_MAX_FD).
constexpr std::size_t kMaxPassedDescriptors = 253;

/// What listenUnix() does with a path name that is taken.
enum class TakenPath {
  refuse,        // address_in_use, whatever is there
  replaceStale,  // see listenUnix()
};

/// A listening, non-blocking AF_UNIX stream socket on `name` ("@x" is the
/// abstract name "x", anything else a path); -1 with `ec` set on error.
/// With TakenPath::replaceStale, a path whose socket file nobody listens
/// on any more (connecting to it is refused) is removed and bound again;
/// one somebody listens on is address_in_use (that listener sees the
/// probing connection, closed at once); a file there that is not a socket
/// is file_exists, and is never removed.
int listenUnix(const std::string& name, int backlog, std::error_code& ec,
               TakenPath taken = TakenPath::refuse) noexcept;

/// A socket file a listener created, known by device and inode: the path
/// alone may name another file by the time the listener closes.
struct SocketFileId {
  dev_t device = 0;
  ino_t inode = 0;
};

/// Records in `id` the socket file at `name` (bound a moment ago); false
/// for an abstract name (no file), or when nothing is there any more.
bool identifySocketFile(const std::string& name, SocketFileId& id) noexcept;

/// Removes the file at `path` if it is still the socket file `id`: a file
/// another listener (or anybody) put there since is left alone.
void removeSocketFileIfSame(const char* path, const SocketFileId& id) noexcept;

/// Registers a cleanup on `pool` that removes the socket file at `name`
/// (bound a moment ago) when the pool goes, as removeSocketFileIfSame()
/// does.  Nothing for an abstract name.
void removeSocketFileWithPool(apr_pool_t* pool, const std::string& name) noexcept;

/// A non-blocking AF_UNIX stream socket connected to `name`; waits (a
/// full backlog) at most until `deadline`.  -1 with `ec` set on error.
int connectUnix(const std::string& name, Deadline deadline, std::error_code& ec) noexcept;

/// One accept4() without waiting: the connection, or -1 with `ec` set
/// (resource_unavailable_try_again when none is queued).
int acceptUnix(int listener, std::error_code& ec) noexcept;

/// The room a control message with kMaxPassedDescriptors descriptors
/// takes (CMSG_SPACE), rounded up: what a descriptor event keeps for one.
constexpr std::size_t kDescriptorControlRoom = 1040;

/// What sendDescriptorsOnce() refuses before sending: no bytes, a null
/// `data` or `fds`, no descriptors or more than kMaxPassedDescriptors
/// (invalid_argument); a negative descriptor (bad_file_descriptor).
std::error_code checkDescriptorsToSend(const void* data, std::size_t size, const int* fds,
                                       std::size_t count) noexcept;

/// Writes the control message (SCM_RIGHTS) carrying `fds[0..count)` (which
/// checkDescriptorsToSend() accepted) into `control` (kDescriptorControlRoom
/// bytes, aligned for a cmsghdr); returns its length for msg_controllen.
std::size_t writeDescriptorControl(unsigned char* control, const int* fds, std::size_t count) noexcept;

/// Takes the descriptors out of the control message a recvmsg() filled
/// (`length` bytes at `control`; `truncated` when it set MSG_CTRUNC) into
/// `fds[0..capacity)`, `received` of them.  More than `capacity`, or a
/// truncated message: closes every one and returns message_size.
std::error_code takeReceivedDescriptors(unsigned char* control, std::size_t length, bool truncated, int* fds,
                                        std::size_t capacity, std::size_t& received) noexcept;

/// One sendmsg() without waiting: `size` bytes with `count` descriptors
/// attached (SCM_RIGHTS).  `sent` says how many bytes went (the
/// descriptors go with the first); resource_unavailable_try_again when
/// the send buffer is full.  More than kMaxPassedDescriptors, or a
/// negative descriptor, is invalid_argument; no bytes is too.
std::error_code sendDescriptorsOnce(int socket, const void* data, std::size_t size, const int* fds,
                                    std::size_t count, std::size_t& sent) noexcept;

/// One recvmsg() without waiting: at most `size` bytes (never past the
/// end of the message that carried descriptors), and the descriptors
/// attached, close-on-exec, into `fds[0..capacity)` (`received` of them).
/// More descriptors than `capacity`, or a control message the kernel
/// truncated: every descriptor of the message is closed, message_size.
/// end_of_stream when the peer closed; resource_unavailable_try_again
/// when nothing is queued.
std::error_code receiveDescriptorsOnce(int socket, void* data, std::size_t size, int* fds, std::size_t capacity,
                                       std::size_t& bytes, std::size_t& received) noexcept;

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

/// Who is at the other end of a connected AF_UNIX socket, as the kernel
/// recorded it when the connection (or the pair) was made.
struct UnixPeerIds {
  pid_t pid = -1;  // -1 where the system does not tell (getpeereid)
  uid_t uid = 0;
  gid_t gid = 0;
};

/// The peer's credentials: SO_PEERCRED where the system has it, else
/// getpeereid() (no process id); operation_not_supported where neither
/// exists, or what the system call reported.
std::error_code unixPeerCredentials(int fd, UnixPeerIds& ids) noexcept;

/// Wakes the peer sleeping on the other end of `socket`: one byte, never
/// waiting and never raising SIGPIPE.  A full socket already holds wake-ups
/// and a dead peer is found by its own waits, so failures are ignored.
void ringBell(int socket) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_UNIX_SOCKET_H
