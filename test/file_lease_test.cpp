// SPDX-License-Identifier: Apache-2.0
// File::open() of a regular file on which another process holds a lease
// (fcntl F_SETLEASE, as Samba and NFS servers take): like open(2), it waits
// for the lease break, until the holder releases the lease, instead of
// failing with EWOULDBLOCK.  Linux only; each case reports SKIP where the
// kernel or the file system refuses leases (not the file's owner without
// CAP_LEASE, fs.leases-enable = 0, a file system without them).
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::File;
using evchan::TaskHandle;
using evchan::test::describe;
using Clock = std::chrono::steady_clock;

// The holder's time in CLOCK_MONOTONIC nanoseconds, which steady_clock
// reads too: comparable across the two processes.
std::int64_t monotonicNanoseconds() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t(now.tv_sec) * 1000000000 + now.tv_nsec;
}
std::int64_t nanosecondsOf(Clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
}

// A regular file of the test's own in `directory`, removed when it goes.
class ScratchFile {
 public:
  explicit ScratchFile(const std::filesystem::path& directory)
      : path_((directory / ("evchan-lease-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)))
                  .string()) {
    const int fd = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    CPPUNIT_ASSERT_MESSAGE("cannot create " + path_ + ": " + std::strerror(errno), fd >= 0);
    ::close(fd);
  }
  ~ScratchFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& str() const { return path_; }

 private:
  static inline std::atomic<int> counter_{0};
  std::string path_;
};

// Why this process cannot take a lease of `type` on `path`, empty when it
// can (it takes one and gives it up at once).
std::string leaseRefusal(const std::string& path, int type) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "open: " + std::string(std::strerror(errno));
  std::string why;
  if (::fcntl(fd, F_SETLEASE, type) != 0) {
    why = "F_SETLEASE on " + path + ": " + std::strerror(errno);
  } else {
    ::fcntl(fd, F_SETLEASE, F_UNLCK);
  }
  ::close(fd);
  return why;
}

// A scratch file on which this process may take a lease of `type`: in the
// temporary directory, else in the build directory (the current one), else
// the test is skipped.
std::unique_ptr<ScratchFile> leasableFile(int type) {
  std::string why;
  const std::filesystem::path directories[] = {std::filesystem::temp_directory_path(), std::filesystem::current_path()};
  for (const std::filesystem::path& directory : directories) {
    auto file = std::make_unique<ScratchFile>(directory);
    const std::string refused = leaseRefusal(file->str(), type);
    if (refused.empty()) return file;
    why += (why.empty() ? "" : "; ") + refused;
  }
  EVCHAN_SKIP("no lease can be taken here: " + why);
}

// What the holder tells the test, one message per write (atomic on a pipe).
struct HolderReport {
  char kind;             // 'L' lease taken (error: its errno), 'S' break signal, 'R' released, 'N' no signal
  int error;             // errno of the step, 0 when it worked
  std::int64_t when;     // CLOCK_MONOTONIC nanoseconds
};

// A child process that opens `path` for reading, takes a lease of `type`
// on it, and when the lease-break signal (SIGIO) comes, waits `delay`,
// then releases the lease, reporting each step on a pipe.  The destructor
// kills it if it has not ended, and reaps it.
class LeaseHolder {
 public:
  LeaseHolder(const std::string& path, int type, std::chrono::milliseconds delay) {
    int ends[2];
    CPPUNIT_ASSERT(::pipe2(ends, O_CLOEXEC) == 0);
    pid_ = ::fork();
    CPPUNIT_ASSERT_MESSAGE(std::string("fork: ") + std::strerror(errno), pid_ >= 0);
    if (pid_ == 0) {
      ::close(ends[0]);
      holdAndRelease(ends[1], path.c_str(), type, delay);
    }
    ::close(ends[1]);
    reports_ = ends[0];
  }
  ~LeaseHolder() {
    if (reports_ >= 0) ::close(reports_);
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  LeaseHolder(const LeaseHolder&) = delete;
  LeaseHolder& operator=(const LeaseHolder&) = delete;

  // The holder's next report; kind 0 when none came within `patience` or
  // the holder ended.
  HolderReport next(std::chrono::milliseconds patience = 10000ms) {
    HolderReport report{};
    pollfd ready{reports_, POLLIN, 0};
    const int timeout = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
        evchan::test::generous(patience)).count());
    if (::poll(&ready, 1, timeout) != 1 || ::read(reports_, &report, sizeof report) != sizeof report) {
      return HolderReport{};
    }
    return report;
  }

 private:
  // The child: only system calls from here on.
  [[noreturn]] static void holdAndRelease(int out, const char* path, int type, std::chrono::milliseconds delay) {
    sigset_t lease;
    sigemptyset(&lease);
    sigaddset(&lease, SIGIO);
    sigprocmask(SIG_BLOCK, &lease, nullptr);  // taken by sigtimedwait, not its default (exit)
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    HolderReport report{'L', 0, 0};
    if (fd < 0 || ::fcntl(fd, F_SETLEASE, type) != 0) report.error = errno;
    report.when = monotonicNanoseconds();
    send(out, report);
    if (report.error != 0) ::_exit(0);
    const timespec patience{20, 0};
    if (::sigtimedwait(&lease, nullptr, &patience) != SIGIO) {
      send(out, HolderReport{'N', errno, monotonicNanoseconds()});
      ::_exit(0);
    }
    send(out, HolderReport{'S', 0, monotonicNanoseconds()});
    const auto ms = delay.count();
    const timespec pause{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000};
    ::nanosleep(&pause, nullptr);
    report = HolderReport{'R', 0, monotonicNanoseconds()};
    if (::fcntl(fd, F_SETLEASE, F_UNLCK) != 0) report.error = errno;
    send(out, report);
    ::_exit(0);
  }
  static void send(int out, const HolderReport& report) {
    while (::write(out, &report, sizeof report) < 0 && errno == EINTR) {
    }
  }

  pid_t pid_ = -1;
  int reports_ = -1;
};

// Starts a holder of a lease of `type` on `path` and waits until it holds
// it: the test fails if it could not take it (the test's own probe could).
std::unique_ptr<LeaseHolder> holderOf(const std::string& path, int type, std::chrono::milliseconds delay) {
  auto holder = std::make_unique<LeaseHolder>(path, type, delay);
  const HolderReport taken = holder->next();
  CPPUNIT_ASSERT_EQUAL('L', taken.kind);
  CPPUNIT_ASSERT_MESSAGE(std::string("the holder's F_SETLEASE: ") + std::strerror(taken.error), taken.error == 0);
  return holder;
}

}  // namespace

class FileLeaseTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(FileLeaseTest);
  CPPUNIT_TEST(testOpenForWritingWaitsForAReadLeaseBreak);
  CPPUNIT_TEST(testOpenForReadingWaitsForAWriteLeaseBreak);
  CPPUNIT_TEST(testOpenInATaskWaitsWithoutHoldingItsWorker);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Another process holds a read lease and releases it 200 ms after the
  // break signal: File::open() for writing opens the file once the lease
  // is gone (not before), as open(2) does, with one descriptor of its own.
  void testOpenForWritingWaitsForAReadLeaseBreak() { openWaitsForTheBreak(F_RDLCK, evchan::kFileWrite); }

  // The same with a write lease and an open for reading (which a read
  // lease does not stop).
  void testOpenForReadingWaitsForAWriteLeaseBreak() { openWaitsForTheBreak(F_WRLCK, evchan::kFileRead); }

  // In a task, the open waits for the break as a blocking call
  // (evchan::blocking()): on a one-worker channel without the stuck-worker
  // monitor, a task spawned while the open waits runs before it returns.
  void testOpenInATaskWaitsWithoutHoldingItsWorker() {
    const std::unique_ptr<ScratchFile> path = leasableFile(F_RDLCK);
    const std::unique_ptr<LeaseHolder> holder = holderOf(path->str(), F_RDLCK, 1000ms);
    EventChannelPtr channel = evchan::test::makeChannelWithoutMonitor(1);
    std::atomic<bool> openReturned{false}, otherRan{false}, otherRanFirst{false};
    std::error_code openError;
    std::error_code ec;
    TaskHandle opener = channel->spawn([&] {
      File file = File::open(path->str(), evchan::kFileWrite, openError);
      openReturned = true;
    }, evchan::TaskOptions(), ec);
    if (ec == std::errc::function_not_supported) EVCHAN_SKIP("this build has no tasks");
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    const HolderReport signalled = holder->next();
    CPPUNIT_ASSERT_MESSAGE("the holder got no lease-break signal", signalled.kind == 'S');
    TaskHandle other = channel->spawn([&] {
      otherRanFirst = !openReturned.load();
      otherRan = true;
    });
    evchan::test::joinWithin(other, 20s);
    evchan::test::joinWithin(opener, 60s);
    CPPUNIT_ASSERT_MESSAGE("open in a task: " + describe(openError), !openError);
    CPPUNIT_ASSERT(otherRan.load());
    CPPUNIT_ASSERT_MESSAGE("a task spawned while the open waited for the lease break ran only after it: the open "
                           "held its worker (not through evchan::blocking())",
                           otherRanFirst.load());
    CPPUNIT_ASSERT_EQUAL('R', holder->next().kind);
  }

 private:
  using EventChannelPtr = std::unique_ptr<evchan::EventChannel>;

  static void openWaitsForTheBreak(int leaseType, unsigned mode) {
    const std::unique_ptr<ScratchFile> path = leasableFile(leaseType);
    const std::unique_ptr<LeaseHolder> holder = holderOf(path->str(), leaseType, 200ms);
    const int descriptorsBefore = evchan::test::openDescriptorCount();
    const Clock::time_point started = Clock::now();
    std::error_code ec;
    File file = File::open(path->str(), mode, ec);
    const Clock::time_point returned = Clock::now();
    const int descriptorsWhileOpen = evchan::test::openDescriptorCount();
    file.close();
    const int descriptorsAfter = evchan::test::openDescriptorCount();
    const HolderReport signalled = holder->next();
    const HolderReport released = holder->next();
    const std::string waited =
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(returned - started).count()) + " ms";
    CPPUNIT_ASSERT_MESSAGE("File::open() with a lease on the file, after " + waited + ": " + describe(ec), !ec);
    CPPUNIT_ASSERT_MESSAGE("the holder got no lease-break signal", signalled.kind == 'S');
    CPPUNIT_ASSERT_EQUAL('R', released.kind);
    CPPUNIT_ASSERT_MESSAGE(std::string("the holder's F_UNLCK: ") + std::strerror(released.error),
                           released.error == 0);
    CPPUNIT_ASSERT_MESSAGE("File::open() returned " + waited + " after it began, before the holder released its "
                           "lease",
                           nanosecondsOf(returned) >= released.when);
    CPPUNIT_ASSERT(returned - started >= 200ms);
    if (descriptorsBefore >= 0) {
      CPPUNIT_ASSERT_EQUAL(descriptorsBefore + 1, descriptorsWhileOpen);
      CPPUNIT_ASSERT_EQUAL(descriptorsBefore, descriptorsAfter);
    }
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(FileLeaseTest);
