// SPDX-License-Identifier: Apache-2.0
// EventChannel::create() when the OS refuses some of the pool's threads
// (POSIX: a child process under RLIMIT_NPROC).
#include <cppunit/extensions/HelperMacros.h>

#include <sys/resource.h>
#include <unistd.h>

#include <evchan/evchan.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <thread>

#include "support/leak_checked_fixture.h"
#include "support/posix/self_process.h"
#include "support/skip.h"

namespace {

using evchan::EventChannel;

EventChannel::Options poolOptions(int initial) {
  EventChannel::Options options;
  options.initialThreads = initial;
  return options;
}

// The "Threads:" line of /proc/self/status: this process's threads.
int threadsInProcess() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "Threads:") {
      int count = -1;
      status >> count;
      return count;
    }
  }
  return -1;
}

// Waits (up to `patience`) for this process to have at most `count`
// threads and returns how many it has: a joined thread leaves the count a
// little after pthread_join() returns, once the kernel has reaped it.
int threadsOnceAtMost(int count, std::chrono::milliseconds patience = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  int threads = threadsInProcess();
  while (threads > count && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    threads = threadsInProcess();
  }
  return threads;
}

// Child-side failures: a message on stderr and an exit status the parent
// reports.
[[noreturn]] void childFails(const std::string& why, int status) {
  std::fprintf(stderr, "%s\n", why.c_str());
  std::fflush(stderr);
  _exit(status);
}

// In the child process: the OS allows only a few more threads
// (RLIMIT_NPROC, which binds root only once it is another user), so a
// pool of 64 cannot start; create() must fail and leave no thread behind.
[[noreturn]] void createWithTooFewThreads() {
  // A sanitizer's runtime may start a thread of its own with the first
  // thread: count from after one.
  // (Then the count stays above `initial` for good: no long wait.  Should
  // the joined thread outlast the short one, threadsBefore counts it, and
  // the checks below, which ask for no more than that, still hold.)
  const int initial = threadsInProcess();
  std::thread([] {}).join();
  const int threadsBefore = threadsOnceAtMost(initial, std::chrono::milliseconds(200));
  if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) childFails("cannot drop root", 77);
  const rlimit few{8, 8};
  if (setrlimit(RLIMIT_NPROC, &few) != 0) childFails("setrlimit(RLIMIT_NPROC)", 77);
  std::error_code ec;
  std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(64), ec);
  if (channel) childFails("create() reported a pool of 64 threads with RLIMIT_NPROC 8 as started", 3);
  if (ec != std::errc::resource_unavailable_try_again) childFails("create() failed with " + ec.message(), 4);
  if (const int left = threadsOnceAtMost(threadsBefore) - threadsBefore; left > 0) {
    childFails(std::to_string(left) + " threads left behind by the failed create()", 5);
  }
  try {
    EventChannel::create(poolOptions(64));
    childFails("the throwing create() did not throw", 6);
  } catch (const evchan::SystemError& e) {
    const std::string what = e.what();
    if (e.code() != std::errc::resource_unavailable_try_again || what.find(" of 64 initial worker threads") == std::string::npos) {
      childFails(std::string("the throwing create() said: ") + what, 7);
    }
  }
  if (threadsOnceAtMost(threadsBefore) > threadsBefore) childFails("threads left behind by the failed throwing create()", 8);
  _exit(0);
}

// The child is this binary started again with kChildVariable set: it runs
// createWithTooFewThreads() before main(), with one thread.
constexpr const char* kChildVariable = "EVCHAN_THREAD_LIMIT_TEST_CHILD";
const bool kIsChild = std::getenv(kChildVariable) != nullptr && (createWithTooFewThreads(), true);

}  // namespace

class ThreadLimitTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ThreadLimitTest);
  CPPUNIT_TEST(testThreadsTheOsRefusesFailCreate);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Creation with a thread limit that lets only a few of the pool's
  // threads start: it fails with resource_unavailable_try_again, the
  // started ones joined, rather than a channel whose poolStats() reports
  // the full pool.
  void testThreadsTheOsRefusesFailCreate() {
    evchan::test::SelfProcess child(kChildVariable, "create", "ThreadLimitTest::noSuchTest");
    const int status = child.exitStatus(std::chrono::seconds(60));
    if (status == 77) EVCHAN_SKIP("cannot limit the child's threads");
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the child's exit status (its stderr says why)", 0, status);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ThreadLimitTest);
