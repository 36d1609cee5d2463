// SPDX-License-Identifier: Apache-2.0
// The main() of every CppUnit test binary: runs the registered suites,
// prints one line per test case and a closing "N passed, N failed" line.
//
// Output lines the driver (test/cppunit-driver) reads:
//   START: Suite::test           (as each case begins, flushed at once)
//   PASS: Suite::test
//   FAIL: Suite::test: file:line: message
//   SKIP: Suite::test: reason
// Exit status: 0 all passed (or skipped), 1 a failure, 77 everything skipped.
//
// Arguments: [--after CASE] [NAME].  NAME runs one suite or case (by its
// name, as CppUnit's findTest() finds it); --after CASE runs only the cases
// that come after CASE, which is how the driver resumes a suite that a
// case hung or crashed.
#include <cppunit/Exception.h>
#include <cppunit/Protector.h>
#include <cppunit/Test.h>
#include <cppunit/TestFailure.h>
#include <cppunit/TestListener.h>
#include <cppunit/TestResult.h>
#include <cppunit/extensions/TestFactoryRegistry.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/skip.h"
#include "support/slowdown.h"

#if defined(EVCHAN_TEST_TSAN)
// What ThreadSanitizer cannot see, for every suite:
// - libstdc++ is not built with TSan, so the atomic reference count of a
//   std::exception_ptr is invisible to it: a thread that reads a task's
//   exception (a join, a TaskGroup report) and drops its reference, and a
//   worker that drops the last one later and deletes the exception, look
//   unordered (seen once in task_group_test under a loaded machine).
// - OpenSSL here is not built with TSan either: its lock-free paths
//   (atomic reference counts, double-checked caches of certificate data
//   shared by the connections of one SSL_CTX) are invisible, and the
//   allocator and memcmp calls libssl and libcrypto make look like races
//   (tls_test).  evchan's own code, and its locks around each SSL object,
//   stay checked.
extern "C" const char* __tsan_default_suppressions();
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n"
         "called_from_lib:libcrypto.so.3\n"
         "called_from_lib:libssl.so.3\n";
}
#endif

namespace {

// Turns a SkipTest thrown from a test into a skip instead of an error.
class SkipProtector : public CppUnit::Protector {
 public:
  bool protect(const CppUnit::Functor& functor, const CppUnit::ProtectorContext& context) override {
    try {
      return functor();
    } catch (const evchan::test::SkipTest& skip) {
      skipped_ = true;
      reason_ = skip.what();
      (void)context;
      return false;
    }
  }

  bool takeSkip(std::string& reason) {
    const bool was = skipped_;
    reason = reason_;
    skipped_ = false;
    reason_.clear();
    return was;
  }

 private:
  bool skipped_ = false;
  std::string reason_;
};

// Ends the process when one case runs longer than its limit, so that a
// hung case fails with its name (test/cppunit-driver records the case
// whose START: line has no result as failed, "timed out", and runs the
// cases after it) instead of the whole suite hitting CI's limit.  The
// limit: EVCHAN_TEST_CASE_TIMEOUT seconds (0: none), by default 180 s
// stretched by slowdown() (sanitizers, valgrind).
class CaseWatchdog {
 public:
  CaseWatchdog() : limit_(configuredLimit()) {
    if (limit_ > std::chrono::seconds::zero()) thread_ = std::thread([this] { watch(); });
  }
  ~CaseWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  CaseWatchdog(const CaseWatchdog&) = delete;
  CaseWatchdog& operator=(const CaseWatchdog&) = delete;

  void started(const std::string& name) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      current_ = name;
      ++serial_;
      running_ = true;
    }
    changed_.notify_all();
  }
  void finished() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++serial_;
      running_ = false;
    }
    changed_.notify_all();
  }

 private:
  static std::chrono::seconds configuredLimit() {
    if (const char* text = std::getenv("EVCHAN_TEST_CASE_TIMEOUT")) return std::chrono::seconds(std::atol(text));
    return std::chrono::seconds(static_cast<long>(180 * evchan::test::slowdown()));
  }

  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stop_ || running_; });
      if (stop_) return;
      const std::uint64_t serial = serial_;
      const auto deadline = std::chrono::steady_clock::now() + limit_;
      if (changed_.wait_until(lock, deadline, [&] { return stop_ || serial_ != serial; })) continue;
      std::fprintf(stderr, "test-main: %s did not finish within %lld s (EVCHAN_TEST_CASE_TIMEOUT): stopping\n",
                   current_.c_str(), static_cast<long long>(limit_.count()));
      std::fflush(stdout);
      std::fflush(stderr);
      std::_Exit(124);  // the driver's "timed out"
    }
  }

  const std::chrono::seconds limit_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string current_;
  std::uint64_t serial_ = 0;
  bool running_ = false;
  bool stop_ = false;
  std::thread thread_;
};

class LineReporter : public CppUnit::TestListener {
 public:
  LineReporter(SkipProtector& protector, CaseWatchdog& watchdog) : protector_(protector), watchdog_(watchdog) {}

  void startTest(CppUnit::Test* test) override {
    // Printed before the case runs: if it never ends (a hang the runner
    // kills, a crash), the log still names it.
    std::printf("START: %s\n", test->getName().c_str());
    std::fflush(stdout);
    watchdog_.started(test->getName());
    failed_ = false;
    started_ = std::chrono::steady_clock::now();
  }

  void addFailure(const CppUnit::TestFailure& failure) override {
    if (failed_) return;  // report the first failure of a test only
    failed_ = true;
    const CppUnit::SourceLine line = failure.sourceLine();
    std::string where = line.isValid() ? line.fileName() + ":" + std::to_string(line.lineNumber()) + ": " : "";
    std::string message = failure.thrownException()->what();
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    failureText_ = where + message;
  }

  void endTest(CppUnit::Test* test) override {
    watchdog_.finished();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started_).count();
    std::string reason;
    const bool skipped = protector_.takeSkip(reason);
    if (failed_) {
      ++failed;
      std::printf("FAIL: %s (%lld ms): %s\n", test->getName().c_str(), static_cast<long long>(ms),
                  failureText_.c_str());
    } else if (skipped) {
      ++skippedCount;
      std::printf("SKIP: %s: %s\n", test->getName().c_str(), reason.c_str());
    } else {
      ++passed;
      std::printf("PASS: %s (%lld ms)\n", test->getName().c_str(), static_cast<long long>(ms));
    }
    std::fflush(stdout);
  }

  int passed = 0;
  int failed = 0;
  int skippedCount = 0;

 private:
  SkipProtector& protector_;
  CaseWatchdog& watchdog_;
  bool failed_ = false;
  std::string failureText_;
  std::chrono::steady_clock::time_point started_;
};

// The test cases under `test`, in the order CppUnit runs them.
void collectCases(CppUnit::Test* test, std::vector<CppUnit::Test*>& cases) {
  const int children = test->getChildTestCount();
  if (children == 0) {
    cases.push_back(test);
    return;
  }
  for (int i = 0; i < children; ++i) collectCases(test->getChildTestAt(i), cases);
}

int usage() {
  std::fprintf(stderr, "usage: test-program [--after CASE] [SUITE-OR-CASE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only, after;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--after" && i + 1 < argc) {
      after = argv[++i];
    } else if (only.empty() && arg.rfind("--", 0) != 0) {
      only = arg;
    } else {
      return usage();
    }
  }
  const std::unique_ptr<CppUnit::Test> all(CppUnit::TestFactoryRegistry::getRegistry().makeTest());
  CppUnit::Test* scope = all.get();
  if (!only.empty()) {
    try {
      scope = all->findTest(only);
    } catch (const std::invalid_argument&) {
      std::fprintf(stderr, "no test named '%s'\n", only.c_str());
      return 2;
    }
  }
  std::vector<CppUnit::Test*> cases;
  collectCases(scope, cases);
  auto first = cases.begin();
  if (!after.empty()) {
    first = std::find_if(cases.begin(), cases.end(), [&](CppUnit::Test* test) { return test->getName() == after; });
    if (first == cases.end()) {
      std::fprintf(stderr, "no test named '%s'\n", after.c_str());
      return 2;
    }
    ++first;
  }

  CppUnit::TestResult result;
  SkipProtector* protector = new SkipProtector;  // owned by result
  result.pushProtector(protector);
  CaseWatchdog watchdog;
  LineReporter reporter(*protector, watchdog);
  result.addListener(&reporter);
  for (auto it = first; it != cases.end(); ++it) result.runTest(*it);
  std::printf("%d passed, %d failed, %d skipped\n", reporter.passed, reporter.failed, reporter.skippedCount);
  if (reporter.failed > 0) return 1;
  if (reporter.passed == 0 && reporter.skippedCount > 0) return 77;
  return 0;
}
