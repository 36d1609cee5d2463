// SPDX-License-Identifier: Apache-2.0
// socketPassesDescriptors() (src/posix/socket_syscalls.cpp), on real
// sockets of each family: it decides whether a channel's reads may use
// recv(2) or need recvmsg(2) to see a read cut short by passed descriptors.
#include <cppunit/extensions/HelperMacros.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "apr/descriptor_passing.h"
#include "support/leak_checked_fixture.h"

namespace {

using evchan::detail::socketPassesDescriptors;

// Closes the descriptor on scope exit.
class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {
    CPPUNIT_ASSERT_MESSAGE(std::string("socket: ") + std::strerror(errno), fd_ >= 0);
  }
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

class DescriptorPassingTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(DescriptorPassingTest);
  CPPUNIT_TEST(ipSocketsPassNone);
  CPPUNIT_TEST(unixSocketsMay);
  CPPUNIT_TEST(anUnknownDescriptorIsTakenToPassThem);
  CPPUNIT_TEST_SUITE_END();

 public:
  void ipSocketsPassNone() {
    const Descriptor tcp4(::socket(AF_INET, SOCK_STREAM, 0));
    CPPUNIT_ASSERT(!socketPassesDescriptors(tcp4.get()));
    const Descriptor udp4(::socket(AF_INET, SOCK_DGRAM, 0));
    CPPUNIT_ASSERT(!socketPassesDescriptors(udp4.get()));
    // A connected one, as a channel usually sees it.
    const Descriptor listener(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    CPPUNIT_ASSERT_EQUAL(0, ::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address));
    CPPUNIT_ASSERT_EQUAL(0, ::listen(listener.get(), 1));
    CPPUNIT_ASSERT_EQUAL(0, ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length));
    const Descriptor client(::socket(AF_INET, SOCK_STREAM, 0));
    CPPUNIT_ASSERT_EQUAL(0, ::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address));
    const Descriptor accepted(::accept(listener.get(), nullptr, nullptr));
    CPPUNIT_ASSERT(!socketPassesDescriptors(client.get()));
    CPPUNIT_ASSERT(!socketPassesDescriptors(accepted.get()));
    const int tcp6 = ::socket(AF_INET6, SOCK_STREAM, 0);
    if (tcp6 < 0) return;  // no IPv6 on this host
    const Descriptor closesTcp6(tcp6);
    CPPUNIT_ASSERT(!socketPassesDescriptors(tcp6));
  }

  void unixSocketsMay() {
    int pair[2];
    CPPUNIT_ASSERT_EQUAL(0, ::socketpair(AF_UNIX, SOCK_STREAM, 0, pair));
    const Descriptor first(pair[0]);
    const Descriptor second(pair[1]);
    CPPUNIT_ASSERT(socketPassesDescriptors(first.get()));
    CPPUNIT_ASSERT(socketPassesDescriptors(second.get()));
    const Descriptor unnamed(::socket(AF_UNIX, SOCK_STREAM, 0));
    CPPUNIT_ASSERT(socketPassesDescriptors(unnamed.get()));
  }

  void anUnknownDescriptorIsTakenToPassThem() {
    // Not a socket (a pipe), and not open: the careful answer.
    int pipeEnds[2];
    CPPUNIT_ASSERT_EQUAL(0, ::pipe(pipeEnds));
    const Descriptor readEnd(pipeEnds[0]);
    const Descriptor writeEnd(pipeEnds[1]);
    CPPUNIT_ASSERT(socketPassesDescriptors(readEnd.get()));
    const int closed = ::dup(readEnd.get());
    CPPUNIT_ASSERT(closed >= 0);
    ::close(closed);
    CPPUNIT_ASSERT(socketPassesDescriptors(closed));
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorPassingTest);
