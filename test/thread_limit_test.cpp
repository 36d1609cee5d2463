// SPDX-License-Identifier: Apache-2.0
// EventChannel::create() when the OS refuses some of the pool's threads
// (POSIX: a forked child under RLIMIT_NPROC).
#include <cppunit/extensions/HelperMacros.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evchan/evchan.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <thread>

#include "support/leak_checked_fixture.h"
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

// Child-side failures: a message on stderr and an exit status the parent
// reports.
[[noreturn]] void childFails(const std::string& why, int status) {
  std::fprintf(stderr, "%s\n", why.c_str());
  _exit(status);
}

// In a forked child (one thread: fork() copies only the caller): the OS
// allows only a few more threads (RLIMIT_NPROC, which binds
// root only once it is another user), so a pool of 64 cannot start;
// create() must fail and leave no thread behind.
void createWithTooFewThreadsInChild() {
  // A sanitizer's runtime may start a thread of its own with the first
  // thread: count from after one.
  std::thread([] {}).join();
  const int threadsBefore = threadsInProcess();
  if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) childFails("cannot drop root", 77);
  const rlimit few{8, 8};
  if (setrlimit(RLIMIT_NPROC, &few) != 0) childFails("setrlimit(RLIMIT_NPROC)", 77);
  std::error_code ec;
  std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(64), ec);
  if (channel) childFails("create() reported a pool of 64 threads with RLIMIT_NPROC 8 as started", 3);
  if (ec != std::errc::resource_unavailable_try_again) childFails("create() failed with " + ec.message(), 4);
  if (threadsInProcess() != threadsBefore) {
    childFails(std::to_string(threadsInProcess() - threadsBefore) + " threads left behind by the failed create()", 5);
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
  if (threadsInProcess() != threadsBefore) childFails("threads left behind by the failed throwing create()", 8);
  _exit(0);
}

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
    std::fflush(nullptr);
    const pid_t child = fork();
    CPPUNIT_ASSERT(child >= 0);
    if (child == 0) createWithTooFewThreadsInChild();
    int status = 0;
    CPPUNIT_ASSERT_EQUAL(child, waitpid(child, &status, 0));
    CPPUNIT_ASSERT_MESSAGE("the child was killed", WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) EVCHAN_SKIP("cannot limit the child's threads");
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the child's exit status (its stderr says why)", 0, WEXITSTATUS(status));
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ThreadLimitTest);
