// SPDX-License-Identifier: Apache-2.0
// File::open() against a path that another thread keeps switching between
// a regular file and a named pipe: the type check before the open cannot
// see what the open will find, so the open itself must never wait for a
// pipe's other end.  POSIX only (Windows has no named pipes in a
// directory).
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>
#include <thread>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/temp_path.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::File;
using evchan::test::describe;
using evchan::test::TempPath;

// Puts a new empty regular file, then the one named pipe, at `target`, each
// by a rename (atomic: the path always names one or the other), until
// `stop`.  The pipe is renamed from a fresh link to it, so that `fifo`
// still names it after the next rename replaces it: a test that finds an
// open waiting on it can reach it there to release that open.
class PathSwapper {
 public:
  PathSwapper(const std::string& target, const std::string& fifo, const std::string& scratch)
      : target_(target), fifo_(fifo), scratch_(scratch) {
    swapOnce();  // the path exists before any open
    thread_ = std::thread([this] {
      while (!stop_.load()) swapOnce();
    });
  }
  ~PathSwapper() { stop(); }
  PathSwapper(const PathSwapper&) = delete;
  PathSwapper& operator=(const PathSwapper&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void swapOnce() {
    const int fd = ::open(scratch_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
    std::rename(scratch_.c_str(), target_.c_str());
    if (::link(fifo_.c_str(), scratch_.c_str()) == 0) std::rename(scratch_.c_str(), target_.c_str());
  }

  const std::string target_, fifo_, scratch_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

class FileOpenRaceTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(FileOpenRaceTest);
  CPPUNIT_TEST(testOpenNeverWaitsForAPipeSwappedIn);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Opens for reading, for writing and for both, in turn, while the path
  // changes under them: each open returns at once, with the regular file
  // or refused.  Before, a pipe renamed onto the path between open()'s
  // type check and its open(2) made an open for reading (or writing
  // only) wait for the other end, for ever: the tester's loop hung in 5
  // runs of 5, within 6 to 84 attempts.
  void testOpenNeverWaitsForAPipeSwappedIn() {
    TempPath target, fifo, scratch;
    CPPUNIT_ASSERT_EQUAL(0, ::mkfifo(fifo.str().c_str(), 0600));
    PathSwapper swapper(target.str(), fifo.str(), scratch.str());
    // Two seconds of opens: the unfixed open waited within a few thousand
    // attempts, and one takes microseconds.
    constexpr int kAttempts = 10000000;
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    const unsigned modes[] = {evchan::kFileRead, evchan::kFileWrite, evchan::kFileRead | evchan::kFileWrite};
    std::atomic<bool> released{false};
    int attempts = 0, opened = 0, refused = 0;
    std::string unexpected;
    int otherEnd = -1;
    const bool returned = evchan::test::finishesWithin(
        10s,
        [&] {
          for (; attempts < kAttempts && !released.load() && std::chrono::steady_clock::now() < deadline;
               ++attempts) {
            const unsigned mode = modes[attempts % 3];
            std::error_code ec;
            File file = File::open(target.str(), mode, ec);
            if (!ec && file.isOpen()) {
              ++opened;
            } else if (ec == std::errc::invalid_argument || (mode == evchan::kFileWrite && refusedWriteOnly(ec))) {
              ++refused;
            } else if (unexpected.empty()) {
              unexpected = "mode " + std::to_string(mode) + ": " + describe(ec);
            }
          }
        },
        [&] {
          // An open waits on the pipe: with the path left alone, a reader
          // and writer at once (O_RDWR) is the other end for either
          // direction, which lets the open return.
          released = true;
          swapper.stop();
          otherEnd = ::open(fifo.str().c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
        });
    swapper.stop();
    if (otherEnd >= 0) ::close(otherEnd);
    CPPUNIT_ASSERT_MESSAGE("File::open() waited for a named pipe's other end (renamed onto the path after its check) "
                           "in attempt " + std::to_string(attempts) + " (" + std::to_string(opened) +
                               " opened, " + std::to_string(refused) + " refused)",
                           returned);
    CPPUNIT_ASSERT_MESSAGE(unexpected, unexpected.empty());
    CPPUNIT_ASSERT(attempts > 0);
    CPPUNIT_ASSERT_EQUAL(attempts, opened + refused);
  }

 private:
  // An open for writing only of a pipe without a reader fails at once
  // (ENXIO) rather than wait; when the path names the regular file again
  // by the time open() looks why, that is the error it reports.
  static bool refusedWriteOnly(const std::error_code& ec) { return ec == std::errc::no_such_device_or_address; }
};

CPPUNIT_TEST_SUITE_REGISTRATION(FileOpenRaceTest);
