// SPDX-License-Identifier: Apache-2.0
// A non-blocking listening socket on 127.0.0.1 for the servers that take a
// plain descriptor (the hand-written epoll loop, libevent).
#ifndef EVCHAN_BENCH_SERVERS_POSIX_LISTEN_H
#define EVCHAN_BENCH_SERVERS_POSIX_LISTEN_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include "servers/echo_server.h"

namespace bench {

/// Binds 127.0.0.1:`port`, listens, and returns the non-blocking descriptor;
/// `boundPort` receives the port.  Throws std::system_error.
inline int listenLoopback(int port, int& boundPort) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(fd, kListenBacklog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(), "listen on 127.0.0.1");
  }
  boundPort = ntohs(address.sin_port);
  return fd;
}

/// TCP_NODELAY on an accepted connection: every server sets it, so that
/// none of them waits on Nagle's algorithm.
inline void setNoDelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace bench

#endif  // EVCHAN_BENCH_SERVERS_POSIX_LISTEN_H
