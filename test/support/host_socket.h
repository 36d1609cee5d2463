// SPDX-License-Identifier: Apache-2.0
// Reading a TcpSocket's options back from the operating system.
#ifndef EVCHAN_TEST_SUPPORT_HOST_SOCKET_H
#define EVCHAN_TEST_SUPPORT_HOST_SOCKET_H

#include <cstdint>

#include <evchan/tcp_socket.h>

namespace evchan::test {

/// The socket options the suites read back.
enum class HostSocketOption { noDelay, keepAlive };

/// Reads `option` from the OS socket behind `socket`, which the API does
/// not expose: it is found among the process's sockets by its local and
/// peer ports.  1 when set, 0 when clear, -1 when the socket was not found
/// or the option could not be read.
int readHostSocketOption(const TcpSocket& socket, HostSocketOption option);

/// Sets SO_RCVBUF and SO_SNDBUF (bytes; the host may round them up) on the
/// OS socket behind `socket`, found as above, so that a test can fill what
/// a connection holds with little data.  False when the socket was not
/// found or the host refused.
bool setHostSocketBuffers(const TcpSocket& socket, int receiveBytes, int sendBytes);

/// Sends one byte of urgent (out-of-band) data on the OS socket behind
/// `socket`, found as above: evchan has no call for it, and a peer may.
/// False when the socket was not found or the host refused.
bool sendHostUrgentByte(const TcpSocket& socket);

/// The bytes received and not yet read on the OS socket behind a
/// TcpSocket (found once, as above): a test sees a reader take its data.
class UnreadBytes {
 public:
  explicit UnreadBytes(const TcpSocket& socket);
  /// The count now (FIONREAD); -1 when the socket was not found or the
  /// host refused.
  long count() const;

 private:
  std::intptr_t handle_;
};

/// A loopback port that refuses connections for as long as this object
/// lives: an OS socket bound to 127.0.0.1 port 0 that never listens.  A
/// port found free and released again does not do: another process may
/// listen on it meanwhile, and a connect to a free port can be given that
/// very port as its own and connect to itself (TCP's simultaneous open),
/// which a bound port rules out.  Throws std::runtime_error when the host
/// refuses the socket.
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  int port() const { return port_; }

 private:
  std::intptr_t handle_;
  int port_ = 0;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_HOST_SOCKET_H
