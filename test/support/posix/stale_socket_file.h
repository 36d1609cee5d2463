// SPDX-License-Identifier: Apache-2.0
// Test support (POSIX): the socket file a listener that is gone leaves
// behind, and the connection a probe makes, for the listeners' tests of a
// path already taken.
#ifndef EVCHAN_TEST_SUPPORT_POSIX_STALE_SOCKET_FILE_H
#define EVCHAN_TEST_SUPPORT_POSIX_STALE_SOCKET_FILE_H

#include <cppunit/extensions/HelperMacros.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace evchan::test {

/// The AF_UNIX address of `path` (which must fit).
inline sockaddr_un unixAddressOf(const std::string& path) {
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  CPPUNIT_ASSERT(path.size() < sizeof address.sun_path);
  std::strcpy(address.sun_path, path.c_str());
  return address;
}

/// Leaves a socket file at `path` whose listener is gone: bound, listened
/// on, closed.
inline void leaveStaleSocketFile(const std::string& path) {
  sockaddr_un address = unixAddressOf(path);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CPPUNIT_ASSERT(fd >= 0);
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 && listen(fd, 1) == 0;
  close(fd);
  CPPUNIT_ASSERT_MESSAGE("cannot leave a socket file at " + path, bound);
  struct stat status;
  CPPUNIT_ASSERT(lstat(path.c_str(), &status) == 0 && S_ISSOCK(status.st_mode));
}

/// Connects to the listener at `path` and hangs up without sending a
/// byte, as a probe or a health check does.
inline void connectAndHangUp(const std::string& path) {
  sockaddr_un address = unixAddressOf(path);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CPPUNIT_ASSERT(fd >= 0);
  const bool connected = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  close(fd);
  CPPUNIT_ASSERT_MESSAGE("cannot connect to " + path, connected);
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_STALE_SOCKET_FILE_H
