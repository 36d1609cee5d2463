// SPDX-License-Identifier: Apache-2.0
// ShmListener on a path name: close() and the destructor remove the socket
// file the listener created, and only that file.  A file put at the path
// since (another listener's socket, a regular file) is left alone, as
// UnixListener leaves it: before, close() unlinked whatever was there, so
// closing an old listener cut a new one off from its clients.  A path is
// taken as UnixListener takes it: a gone listener's socket file is
// replaced (it was address_in_use, so a crashed server could not restart),
// a live one's is address_in_use, and the probe that finds it live does
// not fail that listener's accept() (it was bad_message).
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <system_error>

#include <evchan/evchan.h>
#include <evchan/shm_stream.h>
#include <evchan/unix_socket.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/shm_pair.h"
#include "support/posix/stale_socket_file.h"
#include "support/temp_path.h"

using namespace std::chrono_literals;

namespace {

using evchan::ShmListener;
using evchan::ShmStream;
using evchan::test::TempPath;

constexpr evchan::Duration kPatience = 10s;  // a failing test ends, it never hangs
constexpr std::size_t kSmallRing = 4096;

bool exists(const std::string& path) {
  struct stat status;
  return lstat(path.c_str(), &status) == 0;
}

bool isSocketFile(const std::string& path) {
  struct stat status;
  return lstat(path.c_str(), &status) == 0 && S_ISSOCK(status.st_mode);
}

// A regular file at `path` with a few bytes in it.
void putRegularFile(const std::string& path) {
  const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  CPPUNIT_ASSERT(fd >= 0);
  CPPUNIT_ASSERT_EQUAL(ssize_t{8}, write(fd, "precious", 8));
  close(fd);
}

// `listener` takes a client: a ping written by one end is read by the other.
void checkServes(ShmListener& listener) {
  evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
  pair.client.writeAll("ping", 4);
  char buffer[4];
  pair.server.readExactly(buffer, 4);
  CPPUNIT_ASSERT_EQUAL(std::string("ping"), std::string(buffer, 4));
}

}  // namespace

class ShmListenerPathTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ShmListenerPathTest);
  CPPUNIT_TEST(testCloseRemovesItsOwnFile);
  CPPUNIT_TEST(testCloseLeavesTheNextListenersFile);
  CPPUNIT_TEST(testDestructorLeavesTheNextListenersFile);
  CPPUNIT_TEST(testCloseLeavesARegularFilePutThereSince);
  CPPUNIT_TEST(testAbstractNameHasNoFile);
  CPPUNIT_TEST(testStaleSocketFileIsReplaced);
  CPPUNIT_TEST(testLiveListenersPathIsAddressInUse);
  CPPUNIT_TEST(testProbesDoNotFailTheLiveListenersAccept);
  CPPUNIT_TEST(testRegularFileIsFileExistsAndKept);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testCloseRemovesItsOwnFile() {
    TempPath path("evchan-shm-listener-");
    ShmListener listener = ShmListener::listen(path.str());
    CPPUNIT_ASSERT(isSocketFile(path.str()));
    listener.close();
    CPPUNIT_ASSERT_MESSAGE("the socket file outlived its listener", !exists(path.str()));
  }

  // The usual restart: the old listener's file removed, a new listener on
  // the path, the old one closed after.  The new one keeps its file, and
  // its clients reach it.
  void testCloseLeavesTheNextListenersFile() {
    TempPath path("evchan-shm-listener-");
    ShmListener old = ShmListener::listen(path.str());
    CPPUNIT_ASSERT_EQUAL(0, unlink(path.str().c_str()));
    ShmListener next = ShmListener::listen(path.str());
    old.close();
    CPPUNIT_ASSERT_MESSAGE("closing the old listener removed the new one's socket file", isSocketFile(path.str()));
    checkServes(next);
    next.close();
    CPPUNIT_ASSERT_MESSAGE("the new listener's socket file outlived it", !exists(path.str()));
  }

  void testDestructorLeavesTheNextListenersFile() {
    TempPath path("evchan-shm-listener-");
    ShmListener next;
    {
      ShmListener old = ShmListener::listen(path.str());
      CPPUNIT_ASSERT_EQUAL(0, unlink(path.str().c_str()));
      next = ShmListener::listen(path.str());
    }
    CPPUNIT_ASSERT_MESSAGE("destroying the old listener removed the new one's socket file",
                           isSocketFile(path.str()));
    checkServes(next);
  }

  void testCloseLeavesARegularFilePutThereSince() {
    TempPath path("evchan-shm-listener-");
    ShmListener listener = ShmListener::listen(path.str());
    CPPUNIT_ASSERT_EQUAL(0, unlink(path.str().c_str()));
    putRegularFile(path.str());
    listener.close();
    CPPUNIT_ASSERT_MESSAGE("close() removed a file it did not create", exists(path.str()));
  }

  // An abstract name has no file: close() frees the name all the same.
  void testAbstractNameHasNoFile() {
    const std::string name = evchan::test::uniqueShmName("shm-listener-path-test", "abstract");
    ShmListener listener = ShmListener::listen(name);
    checkServes(listener);
    listener.close();
    ShmListener again = ShmListener::listen(name);  // the name is free again
    CPPUNIT_ASSERT(again.isOpen());
  }

  // A server killed without closing its listener restarts on its path.
  void testStaleSocketFileIsReplaced() {
    TempPath path("evchan-shm-listener-");
    evchan::test::leaveStaleSocketFile(path.str());
    std::error_code ec;
    ShmListener listener = ShmListener::listen(path.str(), 16, ec);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT(isSocketFile(path.str()));
    checkServes(listener);
    listener.close();
    CPPUNIT_ASSERT_MESSAGE("the new socket file outlived its listener", !exists(path.str()));
  }

  void testLiveListenersPathIsAddressInUse() {
    TempPath path("evchan-shm-listener-");
    ShmListener live = ShmListener::listen(path.str());
    std::error_code ec;
    ShmListener second = ShmListener::listen(path.str(), 16, ec);
    ASSERT_ERROR(std::errc::address_in_use, ec);
    CPPUNIT_ASSERT(!second.isOpen());
    evchan::UnixListener unix = evchan::UnixListener::listen(path.str(), 16, ec);
    ASSERT_ERROR(std::errc::address_in_use, ec);
    CPPUNIT_ASSERT(!unix.isOpen());
    CPPUNIT_ASSERT(isSocketFile(path.str()));
    checkServes(live);
  }

  // The probes of the two listen()s above, and a health check's connect
  // and close, each reach the live listener as a connection that hangs up
  // before a byte: accept() drops them and serves the client after them.
  void testProbesDoNotFailTheLiveListenersAccept() {
    TempPath path("evchan-shm-listener-");
    ShmListener live = ShmListener::listen(path.str());
    std::error_code ec;
    ShmListener::listen(path.str(), 16, ec);
    ASSERT_ERROR(std::errc::address_in_use, ec);
    evchan::UnixListener::listen(path.str(), 16, ec);
    ASSERT_ERROR(std::errc::address_in_use, ec);
    evchan::test::connectAndHangUp(path.str());
    // Nothing else came: the wait runs to its timeout, no bad_message.
    live.setTimeout(100ms);
    ShmStream none = live.accept(ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT(!none.isOpen());
    // And a hang-up behind which a client waits: that client is served.
    evchan::test::connectAndHangUp(path.str());
    checkServes(live);
  }

  void testRegularFileIsFileExistsAndKept() {
    TempPath path("evchan-shm-listener-");
    putRegularFile(path.str());
    std::error_code ec;
    ShmListener listener = ShmListener::listen(path.str(), 16, ec);
    ASSERT_ERROR(std::errc::file_exists, ec);
    CPPUNIT_ASSERT(!listener.isOpen());
    CPPUNIT_ASSERT_MESSAGE("listen() removed a regular file", exists(path.str()) && !isSocketFile(path.str()));
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ShmListenerPathTest);
