// SPDX-License-Identifier: Apache-2.0
// readHostSocketOption() and the other host socket probes on Windows hosts.  A SOCKET is a kernel handle,
// and handle values are multiples of four; Windows offers no list of a
// process's sockets, so the candidates are tried in turn (a value that is
// no socket just fails with WSAENOTSOCK).
#include "support/host_socket.h"

#include <winsock2.h>
#include <ws2tcpip.h>

#include <stdexcept>
#include <string>

#include <evchan/address.h>

namespace evchan::test {
namespace {

// Far above the handle values a test process reaches.
constexpr UINT_PTR kLastCandidate = UINT_PTR{1} << 20;

int portOf(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  return -1;
}

SOCKET handleOf(const TcpSocket& socket) {
  const int localPort = socket.localAddress().port();
  const int peerPort = socket.peerAddress().port();
  for (UINT_PTR candidate = 4; candidate <= kLastCandidate; candidate += 4) {
    const SOCKET handle = static_cast<SOCKET>(candidate);
    sockaddr_storage local = {}, peer = {};
    int localLength = sizeof local, peerLength = sizeof peer;
    if (getsockname(handle, reinterpret_cast<sockaddr*>(&local), &localLength) == 0 &&
        getpeername(handle, reinterpret_cast<sockaddr*>(&peer), &peerLength) == 0 &&
        portOf(local) == localPort && portOf(peer) == peerPort)
      return handle;
  }
  return INVALID_SOCKET;
}

}  // namespace

int readHostSocketOption(const TcpSocket& socket, HostSocketOption option) {
  const SOCKET handle = handleOf(socket);
  if (handle == INVALID_SOCKET) return -1;
  const int level = option == HostSocketOption::noDelay ? IPPROTO_TCP : SOL_SOCKET;
  const int name = option == HostSocketOption::noDelay ? TCP_NODELAY : SO_KEEPALIVE;
  // Windows may write a BOOL or a single byte; start from zero either way.
  DWORD value = 0;
  int length = sizeof value;
  if (getsockopt(handle, level, name, reinterpret_cast<char*>(&value), &length) != 0) return -1;
  return value != 0 ? 1 : 0;
}

bool setHostSocketBuffers(const TcpSocket& socket, int receiveBytes, int sendBytes) {
  const SOCKET handle = handleOf(socket);
  return handle != INVALID_SOCKET &&
         setsockopt(handle, SOL_SOCKET, SO_RCVBUF, reinterpret_cast<const char*>(&receiveBytes), sizeof receiveBytes) == 0 &&
         setsockopt(handle, SOL_SOCKET, SO_SNDBUF, reinterpret_cast<const char*>(&sendBytes), sizeof sendBytes) == 0;
}

bool sendHostUrgentByte(const TcpSocket& socket) {
  const SOCKET handle = handleOf(socket);
  return handle != INVALID_SOCKET && send(handle, "!", 1, MSG_OOB) == 1;
}

UnreadBytes::UnreadBytes(const TcpSocket& socket)
    : handle_(static_cast<std::intptr_t>(handleOf(socket))) {}

long UnreadBytes::count() const {
  u_long bytes = 0;
  if (static_cast<SOCKET>(handle_) == INVALID_SOCKET || ioctlsocket(static_cast<SOCKET>(handle_), FIONREAD, &bytes) != 0)
    return -1;
  return static_cast<long>(bytes);
}

RefusingPort::RefusingPort() {
  WSADATA data;
  if (WSAStartup(MAKEWORD(2, 2), &data) != 0) throw std::runtime_error("RefusingPort: WSAStartup failed");
  const SOCKET handle = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int length = sizeof address;
  if (handle == INVALID_SOCKET || bind(handle, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(handle, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = WSAGetLastError();
    if (handle != INVALID_SOCKET) closesocket(handle);
    WSACleanup();
    throw std::runtime_error("RefusingPort: socket or bind failed, WSA error " + std::to_string(error));
  }
  handle_ = static_cast<std::intptr_t>(handle);
  port_ = ntohs(address.sin_port);
}

RefusingPort::~RefusingPort() {
  closesocket(static_cast<SOCKET>(handle_));
  WSACleanup();
}

}  // namespace evchan::test
