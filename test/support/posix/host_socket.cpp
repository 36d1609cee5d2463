// SPDX-License-Identifier: Apache-2.0
// readHostSocketOption() and the other host socket probes on POSIX hosts:
// the socket is found among the descriptors listed in /proc/self/fd.
#include "support/host_socket.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include <evchan/address.h>

namespace evchan::test {
namespace {

int portOf(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  return -1;
}

int descriptorOf(const TcpSocket& socket) {
  const int localPort = socket.localAddress().port();
  const int peerPort = socket.peerAddress().port();
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (const dirent* entry = readdir(dir)) {
    if (!std::isdigit(static_cast<unsigned char>(entry->d_name[0]))) continue;
    const int fd = std::atoi(entry->d_name);
    sockaddr_storage local = {}, peer = {};
    socklen_t localLength = sizeof local, peerLength = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLength) == 0 &&
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peerLength) == 0 &&
        portOf(local) == localPort && portOf(peer) == peerPort) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

}  // namespace

int readHostSocketOption(const TcpSocket& socket, HostSocketOption option) {
  const int fd = descriptorOf(socket);
  if (fd < 0) return -1;
  const int level = option == HostSocketOption::noDelay ? IPPROTO_TCP : SOL_SOCKET;
  const int name = option == HostSocketOption::noDelay ? TCP_NODELAY : SO_KEEPALIVE;
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, level, name, &value, &length) != 0) return -1;
  return value != 0 ? 1 : 0;
}

bool setHostSocketBuffers(const TcpSocket& socket, int receiveBytes, int sendBytes) {
  const int fd = descriptorOf(socket);
  return fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBytes, sizeof receiveBytes) == 0 &&
         setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sendBytes, sizeof sendBytes) == 0;
}

bool sendHostUrgentByte(const TcpSocket& socket) {
  const int fd = descriptorOf(socket);
  int flags = MSG_OOB;
#ifdef MSG_NOSIGNAL
  flags |= MSG_NOSIGNAL;
#endif
  return fd >= 0 && send(fd, "!", 1, flags) == 1;
}

UnreadBytes::UnreadBytes(const TcpSocket& socket) : handle_(descriptorOf(socket)) {}

long UnreadBytes::count() const {
  int bytes = 0;
  if (handle_ < 0 || ioctl(static_cast<int>(handle_), FIONREAD, &bytes) != 0) return -1;
  return bytes;
}

RefusingPort::RefusingPort() : handle_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
  if (handle_ < 0) throw std::runtime_error(std::string("RefusingPort: socket: ") + std::strerror(errno));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const int fd = static_cast<int>(handle_);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    close(fd);
    throw std::runtime_error(std::string("RefusingPort: bind: ") + std::strerror(error));
  }
  port_ = ntohs(address.sin_port);
}

RefusingPort::~RefusingPort() { close(static_cast<int>(handle_)); }

}  // namespace evchan::test
