// SPDX-License-Identifier: Apache-2.0
// AF_UNIX sockets for the shared-memory stream: names, SCM_RIGHTS, bells.
#include "linux/unix_socket.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <thread>

#include <apr_portable.h>

#include <evchan/error.h>
#include <evchan/task.h>

#include "apr/socket_state.h"

namespace evchan::detail {
namespace {

std::error_code lastError() { return std::error_code(errno, std::generic_category()); }

// Fills `address` for `name`; its length for bind/connect in `length`.
std::error_code unixAddress(const std::string& name, sockaddr_un& address, socklen_t& length) {
  address = {};
  address.sun_family = AF_UNIX;
  if (name.empty() || name == "@") return Errc::bad_endpoint;
  if (name.size() >= sizeof address.sun_path) return std::make_error_code(std::errc::filename_too_long);
  if (name.find('\0') != std::string::npos) return Errc::bad_endpoint;
  std::memcpy(address.sun_path, name.data(), name.size());
  // "@x": Linux's abstract namespace, a leading NUL and no terminator.
  if (name[0] == '@') address.sun_path[0] = '\0';
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '@' ? 0 : 1));
  return {};
}

int openStreamSocket(std::error_code& ec) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ec = lastError();
  return fd;
}

void closeAll(int* fds, int count) {
  for (int i = 0; i < count; ++i) {
    if (fds[i] >= 0) ::close(fds[i]);
    fds[i] = -1;
  }
}

}  // namespace

int listenUnix(const std::string& name, int backlog, std::error_code& ec) noexcept {
  sockaddr_un address;
  socklen_t length = 0;
  if ((ec = unixAddress(name, address, length))) return -1;
  if (backlog < 0) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return -1;
  }
  const int fd = openStreamSocket(ec);
  if (fd < 0) return -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 || ::listen(fd, backlog) != 0) {
    ec = lastError();
    ::close(fd);
    return -1;
  }
  ec.clear();
  return fd;
}

int connectUnix(const std::string& name, Deadline deadline, std::error_code& ec) noexcept {
  sockaddr_un address;
  socklen_t length = 0;
  if ((ec = unixAddress(name, address, length))) return -1;
  const int fd = openStreamSocket(ec);
  if (fd < 0) return -1;
  for (;;) {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0) break;
    const int error = errno;
    // A non-blocking AF_UNIX connect does not queue: a full backlog is
    // EAGAIN, and the connect is simply retried until the deadline.
    if (error == EINTR) continue;
    if (error != EAGAIN || Clock::now() >= deadline) {
      ec = error == EAGAIN ? std::make_error_code(std::errc::timed_out) : std::error_code(error, std::generic_category());
      ::close(fd);
      return -1;
    }
    if (inTask()) {
      // A task's sleep may throw operation_canceled (its channel shutting
      // down); this function reports errors, it does not throw.
      try {
        this_task::sleepFor(std::chrono::milliseconds(1));
      } catch (const std::system_error& failure) {
        ec = failure.code();
        ::close(fd);
        return -1;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ec.clear();
  return fd;
}

int acceptUnix(int listener, std::error_code& ec) noexcept {
  for (;;) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      ec.clear();
      return fd;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    ec = errno == EWOULDBLOCK ? std::make_error_code(std::errc::resource_unavailable_try_again) : lastError();
    return -1;
  }
}

std::error_code sendWithDescriptors(int socket, const void* data, std::size_t size, const int* fds,
                                    int count) noexcept {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  if (count < 0 || count > 4) return std::make_error_code(std::errc::invalid_argument);
  iovec part = {const_cast<void*>(data), size};
  msghdr message = {};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * count);
  std::memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
  for (;;) {
    const ssize_t sent = sendmsg(socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent == static_cast<ssize_t>(size)) return {};
    if (sent < 0 && errno == EINTR) continue;
    // A fresh connection's send buffer takes a small message whole.
    return sent < 0 ? lastError() : std::make_error_code(std::errc::message_size);
  }
}

std::error_code receiveWithDescriptors(int socket, void* data, std::size_t size, int* fds, int count,
                                       Deadline deadline) noexcept {
  for (int i = 0; i < count; ++i) fds[i] = -1;
  // Room for more descriptors than expected, so that extra ones arrive
  // (and are closed) instead of being truncated silently.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  iovec part = {data, size};
  msghdr message = {};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  ssize_t received;
  for (;;) {
    received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (received >= 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return lastError();
    if (std::error_code ec = pollUntil(socket, POLLIN, deadline)) return ec;
  }
  int got = 0;
  bool extra = false;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
      if (got < count) {
        fds[got++] = fd;
      } else {
        ::close(fd);
        extra = true;
      }
    }
  }
  // The whole hello in one piece, with exactly the descriptors expected:
  // anything else is a client that does not speak the protocol.
  if (received == 0) {
    closeAll(fds, count);
    return Errc::end_of_stream;
  }
  if (static_cast<std::size_t>(received) != size || got != count || extra ||
      (message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0) {
    closeAll(fds, count);
    return std::make_error_code(std::errc::bad_message);
  }
  return {};
}

std::error_code pollUntil(int fd, short events, Deadline deadline) noexcept {
  pollfd entry = {};
  entry.fd = fd;
  entry.events = events;
  return pollAnyUntil(&entry, 1, deadline);
}

std::error_code pollAnyUntil(pollfd* entries, std::size_t count, Deadline deadline) noexcept {
  for (;;) {
    const Deadline now = Clock::now();
    if (now >= deadline) return std::make_error_code(std::errc::timed_out);
    const int ready = poll(entries, static_cast<nfds_t>(count), timeoutMilliseconds(deadline, now));
    if (ready > 0) return {};
    if (ready < 0 && errno != EINTR) return lastError();
  }
}

bool peerCredentials(int fd, ucred& credentials) noexcept {
  socklen_t length = sizeof credentials;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 && length == sizeof credentials;
}

bool isSocketPairEnd(int fd) noexcept {
  int domain = 0, type = 0, listening = 1;
  socklen_t length = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0 || domain != AF_UNIX) return false;
  length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM) return false;
  length = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening != 0) return false;
  // Unconnected: getpeername() fails.  A connect()ed socket's peer, or an
  // accept()ed one's own address, is the listener's name: only the two
  // ends of a socketpair (that nobody bound) are unnamed on both sides.
  sockaddr_un address;
  length = sizeof address;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 || length != sizeof(sa_family_t))
    return false;
  length = sizeof address;
  return getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0 && length == sizeof(sa_family_t);
}

std::uint64_t socketInode(int fd) noexcept {
  struct stat status;
  if (fstat(fd, &status) != 0 || !S_ISSOCK(status.st_mode)) return 0;
  return status.st_ino;
}

std::uint64_t unixPeerInode(int fd) noexcept {
  const std::uint64_t inode = socketInode(fd);
  if (inode == 0 || inode > UINT32_MAX) return 0;  // unix_diag names sockets by 32 bits
  const int diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (diag < 0) return 0;
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } query = {};
  query.header.nlmsg_len = sizeof query;
  query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  query.header.nlmsg_flags = NLM_F_REQUEST;
  query.request.sdiag_family = AF_UNIX;
  query.request.udiag_states = ~0u;
  query.request.udiag_ino = static_cast<std::uint32_t>(inode);
  query.request.udiag_show = UDIAG_SHOW_PEER;
  query.request.udiag_cookie[0] = query.request.udiag_cookie[1] = ~0u;  // any cookie
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  alignas(nlmsghdr) char reply[512];
  ssize_t received = -1;
  if (sendto(diag, &query, sizeof query, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) ==
      static_cast<ssize_t>(sizeof query)) {
    // The kernel answers while sendto() runs: the reply is already queued.
    do received = recv(diag, reply, sizeof reply, MSG_DONTWAIT);
    while (received < 0 && errno == EINTR);
  }
  ::close(diag);
  if (received <= 0) return 0;
  auto* header = reinterpret_cast<nlmsghdr*>(reply);
  if (!NLMSG_OK(header, static_cast<std::size_t>(received)) || header->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
      header->nlmsg_len < NLMSG_LENGTH(sizeof(unix_diag_msg)))
    return 0;
  auto* message = static_cast<unix_diag_msg*>(NLMSG_DATA(header));
  if (message->udiag_ino != inode) return 0;
  int left = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(unix_diag_msg)));
  for (auto* attribute = reinterpret_cast<rtattr*>(message + 1); RTA_OK(attribute, left);
       attribute = RTA_NEXT(attribute, left)) {
    if (attribute->rta_type != UNIX_DIAG_PEER || RTA_PAYLOAD(attribute) < sizeof(std::uint32_t)) continue;
    std::uint32_t peer;
    std::memcpy(&peer, RTA_DATA(attribute), sizeof peer);
    return peer;
  }
  return 0;
}

bool kernelTellsUnixPeers() noexcept {
  static const bool works = [] {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return false;
    const bool answer = unixPeerInode(pair[0]) == socketInode(pair[1]) && socketInode(pair[1]) != 0;
    ::close(pair[0]);
    ::close(pair[1]);
    return answer;
  }();
  return works;
}

void ringBell(int socket) noexcept {
  const char bell = 1;
  ssize_t sent;
  do sent = send(socket, &bell, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (sent < 0 && errno == EINTR);
}


}  // namespace evchan::detail
