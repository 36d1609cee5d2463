// SPDX-License-Identifier: Apache-2.0
// AF_UNIX stream sockets: names, the stale-file rule, SCM_RIGHTS, peer
// credentials, bells.
#include "posix/unix_socket.h"

#include <fcntl.h>
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

#include <apr_pools.h>

#include <evchan/error.h>
#include <evchan/task.h>


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
#ifndef __linux__
  if (name[0] == '@') return std::make_error_code(std::errc::address_family_not_supported);
#endif
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

namespace {

// After bind() found `name` taken: removes the file if it is a socket
// nobody listens on (a connect is refused), so that bind() may try again.
std::error_code removeStaleSocketFile(const std::string& name, const sockaddr_un& address, socklen_t length) {
  struct stat status;
  if (lstat(name.c_str(), &status) != 0) {
    // Gone meanwhile (another process cleaned up): bind() may try again.
    return errno == ENOENT ? std::error_code() : std::make_error_code(std::errc::address_in_use);
  }
  if (!S_ISSOCK(status.st_mode)) return std::make_error_code(std::errc::file_exists);
  std::error_code ec;
  const int probe = openStreamSocket(ec);
  if (probe < 0) return ec;
  int result;
  do result = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), length);
  while (result != 0 && errno == EINTR);
  const int error = result == 0 ? 0 : errno;
  ::close(probe);
  // Accepted, or a full backlog (EAGAIN): somebody listens.  Refused: the
  // file outlived its listener.  Anything else (a datagram socket there,
  // no permission) is not ours to remove.
  if (error != ECONNREFUSED) return std::make_error_code(std::errc::address_in_use);
  if (unlink(name.c_str()) != 0 && errno != ENOENT) return lastError();
  return {};
}

int bindAndListen(int fd, const std::string& name, const sockaddr_un& address, socklen_t length, int backlog,
                  TakenPath taken, std::error_code& ec) {
  const auto* raw = reinterpret_cast<const sockaddr*>(&address);
  if (bind(fd, raw, length) != 0) {
    if (errno != EADDRINUSE || name[0] == '@' || taken == TakenPath::refuse) {
      ec = lastError();
      return -1;
    }
    if ((ec = removeStaleSocketFile(name, address, length))) return -1;
    if (bind(fd, raw, length) != 0) {
      ec = lastError();
      return -1;
    }
  }
  if (::listen(fd, backlog) != 0) {
    ec = lastError();
    if (name[0] != '@') unlink(name.c_str());
    return -1;
  }
  return fd;
}

struct PooledSocketFile {
  SocketFileId id;
  char path[1];  // allocated longer, with the terminator
};

apr_status_t removePooledSocketFile(void* data) {
  const auto* file = static_cast<const PooledSocketFile*>(data);
  removeSocketFileIfSame(file->path, file->id);
  return APR_SUCCESS;
}

}  // namespace

int listenUnix(const std::string& name, int backlog, std::error_code& ec, TakenPath taken) noexcept {
  sockaddr_un address;
  socklen_t length = 0;
  if ((ec = unixAddress(name, address, length))) return -1;
  if (backlog < 0) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return -1;
  }
  const int fd = openStreamSocket(ec);
  if (fd < 0) return -1;
  if (bindAndListen(fd, name, address, length, backlog, taken, ec) < 0) {
    ::close(fd);
    return -1;
  }
  ec.clear();
  return fd;
}

bool identifySocketFile(const std::string& name, SocketFileId& id) noexcept {
  struct stat status;
  if (name.empty() || name[0] == '@' || lstat(name.c_str(), &status) != 0) return false;
  id.device = status.st_dev;
  id.inode = status.st_ino;
  return true;
}

void removeSocketFileIfSame(const char* path, const SocketFileId& id) noexcept {
  struct stat status;
  if (lstat(path, &status) == 0 && S_ISSOCK(status.st_mode) && status.st_dev == id.device &&
      status.st_ino == id.inode)
    unlink(path);
}

void removeSocketFileWithPool(apr_pool_t* pool, const std::string& name) noexcept {
  SocketFileId id;
  if (!identifySocketFile(name, id)) return;
  auto* file = static_cast<PooledSocketFile*>(apr_palloc(pool, sizeof(PooledSocketFile) + name.size()));
  file->id = id;
  std::memcpy(file->path, name.c_str(), name.size() + 1);
  apr_pool_cleanup_register(pool, file, removePooledSocketFile, apr_pool_cleanup_null);
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

static_assert(CMSG_SPACE(sizeof(int) * kMaxPassedDescriptors) <= kDescriptorControlRoom,
              "kDescriptorControlRoom holds the largest SCM_RIGHTS message");

std::error_code checkDescriptorsToSend(const void* data, std::size_t size, const int* fds,
                                       std::size_t count) noexcept {
  if (count == 0 || count > kMaxPassedDescriptors || size == 0 || data == nullptr || fds == nullptr)
    return std::make_error_code(std::errc::invalid_argument);
  for (std::size_t i = 0; i < count; ++i)
    if (fds[i] < 0) return std::make_error_code(std::errc::bad_file_descriptor);
  return {};
}

std::size_t writeDescriptorControl(unsigned char* control, const int* fds, std::size_t count) noexcept {
  msghdr message = {};
  message.msg_control = control;
  message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
  std::memset(control, 0, message.msg_controllen);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * count);
  std::memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
  return message.msg_controllen;
}

std::error_code takeReceivedDescriptors(unsigned char* control, std::size_t length, bool truncated, int* fds,
                                        std::size_t capacity, std::size_t& received) noexcept {
  received = 0;
  msghdr message = {};
  message.msg_control = control;
  message.msg_controllen = length;
  bool extra = truncated;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
      if (received < capacity && fds != nullptr) {
        fds[received++] = fd;
      } else {
        ::close(fd);
        extra = true;
      }
    }
  }
  if (!extra) return {};
  for (std::size_t i = 0; i < received; ++i) ::close(fds[i]);
  received = 0;
  return std::make_error_code(std::errc::message_size);
}

std::error_code sendDescriptorsOnce(int socket, const void* data, std::size_t size, const int* fds,
                                    std::size_t count, std::size_t& sent) noexcept {
  sent = 0;
  if (std::error_code ec = checkDescriptorsToSend(data, size, fds, count)) return ec;
  alignas(cmsghdr) unsigned char control[kDescriptorControlRoom];
  iovec part = {const_cast<void*>(data), size};
  msghdr message = {};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = writeDescriptorControl(control, fds, count);
  for (;;) {
    const ssize_t result = sendmsg(socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (result >= 0) {
      sent = static_cast<std::size_t>(result);
      return {};
    }
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK ? std::make_error_code(std::errc::resource_unavailable_try_again) : lastError();
  }
}

std::error_code receiveDescriptorsOnce(int socket, void* data, std::size_t size, int* fds, std::size_t capacity,
                                       std::size_t& bytes, std::size_t& received) noexcept {
  bytes = received = 0;
  // Room for as many descriptors as a message can carry, so that extra
  // ones arrive (and are closed) instead of being truncated silently.
  alignas(cmsghdr) unsigned char control[kDescriptorControlRoom];
  iovec part = {data, size};
  msghdr message = {};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  ssize_t result;
  for (;;) {
    result = recvmsg(socket, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (result >= 0) break;
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK ? std::make_error_code(std::errc::resource_unavailable_try_again) : lastError();
  }
  const std::error_code ec = takeReceivedDescriptors(control, message.msg_controllen,
                                                     (message.msg_flags & MSG_CTRUNC) != 0, fds, capacity, received);
  if (!ec && result == 0 && size != 0) return Errc::end_of_stream;
  bytes = static_cast<std::size_t>(result);
  return ec;
}

std::error_code sendWithDescriptors(int socket, const void* data, std::size_t size, const int* fds,
                                    int count) noexcept {
  if (count < 0) return std::make_error_code(std::errc::invalid_argument);
  std::size_t sent = 0;
  if (std::error_code ec = sendDescriptorsOnce(socket, data, size, fds, static_cast<std::size_t>(count), sent))
    return ec;
  // A fresh connection's send buffer takes a small message whole.
  return sent == size ? std::error_code() : std::make_error_code(std::errc::message_size);
}

std::error_code receiveWithDescriptors(int socket, void* data, std::size_t size, int* fds, int count,
                                       Deadline deadline) noexcept {
  for (int i = 0; i < count; ++i) fds[i] = -1;
  std::size_t bytes = 0, received = 0;
  std::error_code ec;
  for (;;) {
    ec = receiveDescriptorsOnce(socket, data, size, fds, static_cast<std::size_t>(count), bytes, received);
    if (ec != std::errc::resource_unavailable_try_again) break;
    if ((ec = pollUntil(socket, POLLIN, deadline))) return ec;
  }
  if (ec == std::errc::message_size) return std::make_error_code(std::errc::bad_message);
  if (ec) return ec;
  // The whole hello in one piece, with exactly the descriptors expected:
  // anything else is a client that does not speak the protocol.
  if (bytes != size || received != static_cast<std::size_t>(count)) {
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


std::error_code unixPeerCredentials(int fd, UnixPeerIds& ids) noexcept {
  ids = UnixPeerIds();
#if defined(SO_PEERCRED) && defined(__linux__)
  ucred credentials;
  socklen_t length = sizeof credentials;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return lastError();
  if (length != sizeof credentials) return std::make_error_code(std::errc::operation_not_supported);
  ids.pid = credentials.pid;
  ids.uid = credentials.uid;
  ids.gid = credentials.gid;
  return {};
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
  if (getpeereid(fd, &ids.uid, &ids.gid) != 0) return lastError();
  return {};
#else
  (void)fd;
  return std::make_error_code(std::errc::operation_not_supported);
#endif
}

void ringBell(int socket) noexcept {
  const char bell = 1;
  ssize_t sent;
  do sent = send(socket, &bell, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (sent < 0 && errno == EINTR);
}


}  // namespace evchan::detail
