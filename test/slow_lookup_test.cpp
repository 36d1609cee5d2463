// SPDX-License-Identifier: Apache-2.0
// Name resolution never blocks a worker, proved with a slow resolver: each
// case runs test/slow_lookup_child with test/.libs/slow_getaddrinfo.so
// preloaded (LD_PRELOAD), whose getaddrinfo() takes 200 ms.  The child
// measures; this suite asserts on what it printed, its exit status and an
// empty stderr (no sanitizer report).  A child that cannot preload the
// library (a sanitizer runtime that must come first, a static build)
// makes the cases skip, with the child's reason.
#include <cppunit/extensions/HelperMacros.h>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/skip.h"

extern char** environ;

#ifndef EVCHAN_SLOW_LOOKUP_CHILD
#error "EVCHAN_SLOW_LOOKUP_CHILD must name the test/slow_lookup_child program"
#endif
#ifndef EVCHAN_SLOW_GETADDRINFO
#error "EVCHAN_SLOW_GETADDRINFO must name the slow getaddrinfo shared object"
#endif

namespace {

struct ChildResult {
  int status = 0;  // as waitpid() reports it
  std::string output;
  std::string errorOutput;
  bool finished = false;  // false: killed after the patience ran out
  std::map<std::string, long> values;  // the "name=value" lines of its output

  bool passed() const { return finished && WIFEXITED(status) && WEXITSTATUS(status) == 0 && errorOutput.empty(); }
  bool skipped() const { return finished && WIFEXITED(status) && WEXITSTATUS(status) == 77; }
  long value(const std::string& name) const {
    auto it = values.find(name);
    CPPUNIT_ASSERT_MESSAGE("the child printed no " + name + ": " + describe(), it != values.end());
    return it->second;
  }
  std::string describe() const {
    std::string text;
    if (!finished) text = "did not exit within the patience and was killed; ";
    if (WIFEXITED(status)) text += "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) text += "killed by signal " + std::to_string(WTERMSIG(status));
    text += "; stdout:\n" + output;
    if (!errorOutput.empty()) text += "stderr:\n" + errorOutput;
    return text;
  }
};

// The environment with the slow library preloaded first, and ASan told
// not to insist on coming first itself (its interceptors still work).
std::vector<std::string> childEnvironment() {
  std::vector<std::string> variables;
  std::string preload = std::string("LD_PRELOAD=") + EVCHAN_SLOW_GETADDRINFO;
  std::string asan = "ASAN_OPTIONS=verify_asan_link_order=0";
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string variable = *entry;
    if (variable.rfind("LD_PRELOAD=", 0) == 0) {
      preload += ":" + variable.substr(std::strlen("LD_PRELOAD="));
    } else if (variable.rfind("ASAN_OPTIONS=", 0) == 0) {
      asan = variable + ":verify_asan_link_order=0";
    } else {
      variables.push_back(variable);
    }
  }
  variables.push_back(preload);
  variables.push_back(asan);
  return variables;
}

// Reads both pipes until the child closes them (its exit).
void collect(int outFd, int errFd, ChildResult& result) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  pollfd fds[2] = {{outFd, POLLIN, 0}, {errFd, POLLIN, 0}};
  std::string* sinks[2] = {&result.output, &result.errorOutput};
  int open = 2;
  while (open > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    const int ready = poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;
        --open;
      } else {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      }
    }
  }
  result.finished = true;
}

ChildResult runChild(const char* scenario) {
  int out[2];
  int err[2];
  CPPUNIT_ASSERT_EQUAL(0, pipe(out));
  CPPUNIT_ASSERT_EQUAL(0, pipe(err));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  for (int fd : {out[0], out[1], err[0], err[1]}) posix_spawn_file_actions_addclose(&actions, fd);
  const std::string program = EVCHAN_SLOW_LOOKUP_CHILD;
  char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>(scenario), nullptr};
  std::vector<std::string> variables = childEnvironment();
  std::vector<char*> envp;
  for (std::string& variable : variables) envp.push_back(&variable[0]);
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  ChildResult result;
  if (spawned == 0) collect(out[0], err[0], result);
  close(out[0]);
  close(err[0]);
  if (spawned != 0) CPPUNIT_FAIL("posix_spawn " + program + ": " + std::strerror(spawned));
  if (!result.finished) kill(pid, SIGKILL);
  while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
  }
  std::istringstream lines(result.output);
  std::string line;
  while (std::getline(lines, line)) {
    const std::size_t equals = line.find('=');
    if (equals != std::string::npos) result.values[line.substr(0, equals)] = std::stol(line.substr(equals + 1));
  }
  return result;
}

// Runs `scenario`, skipping when the child cannot preload the library.
ChildResult runPassing(const char* scenario) {
  const ChildResult probe = runChild("probe");
  if (!probe.passed()) EVCHAN_SKIP("the slow getaddrinfo cannot be preloaded here: " + probe.describe());
  ChildResult result = runChild(scenario);
  CPPUNIT_ASSERT_MESSAGE(std::string("slow_lookup_child ") + scenario + ": " + result.describe(), result.passed());
  return result;
}

class SlowLookupTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(SlowLookupTest);
  CPPUNIT_TEST(numericHostsNeverCallTheResolver);
  CPPUNIT_TEST(aLookupInATaskLeavesTheWorkerFree);
  CPPUNIT_TEST(cancelledLookupsEndAtOnceAndTouchNothingLater);
  CPPUNIT_TEST(threadsLeftByCancelledLookupsKeepToFourLiveLookups);
  CPPUNIT_TEST(aWaitingLookupStartsWhenTheLookupsAheadOfItAreCancelled);
  CPPUNIT_TEST(aLookupCancelledAsItsChannelShutsDownResumesItsTaskOnAWorker);
  CPPUNIT_TEST_SUITE_END();

 public:
  // The child checks the preload's call counter around each numeric
  // resolve and connect, in a task and on a thread.
  void numericHostsNeverCallTheResolver() {
    const ChildResult result = runPassing("numeric");
    CPPUNIT_ASSERT_MESSAGE(result.describe(), result.value("numeric_ms") < 200);
  }

  // One worker, no spare thread: a task that calls getaddrinfo itself
  // stops the ticker for the whole lookup, while resolve(),
  // connect(Endpoint) and listen(Endpoint) let it tick on.  The ticks a 200 ms lookup leaves
  // room for are ~180 on an idle machine; a loaded one (or a sanitizer)
  // loses many timer wake-ups, so the bound is 10 ticks, far above the 0
  // or 1 of a blocked worker.
  void aLookupInATaskLeavesTheWorkerFree() {
    const ChildResult result = runPassing("ticker");
    for (const char* call : {"resolve", "connect", "listen"}) {
      const long took = result.value(std::string(call) + "_ms");
      const long ticks = result.value(std::string(call) + "_ticks");
      CPPUNIT_ASSERT_MESSAGE(std::string(call) + " was not slow: " + result.describe(), took >= 190);
      CPPUNIT_ASSERT_MESSAGE(std::string(call) + " stalled the ticker: " + result.describe(), ticks >= 10);
    }
    CPPUNIT_ASSERT_MESSAGE("a lookup on the worker did not stall the ticker: " + result.describe(),
                           result.value("blocking_ticks") <= 1);
  }

  // Shutdown cancels a ResolveEvent and a resolve() in a task without
  // waiting for their lookups; a timeout cancels connect(Endpoint)'s.
  void cancelledLookupsEndAtOnceAndTouchNothingLater() {
    const ChildResult result = runPassing("cancel");
    CPPUNIT_ASSERT_MESSAGE(result.describe(), result.value("shutdown_ms") < 150);
    CPPUNIT_ASSERT_MESSAGE(result.describe(), result.value("timeout_ms") < 190);
  }

  // 4 lookups held inside getaddrinfo are cancelled, 8 more posted (4
  // start on new threads, 4 wait); when only the cancelled ones are let
  // go, their threads must not start the waiting ones beside the 4 live
  // ones.  The child checks the same; before the fix it counted 4 started
  // beside and 8 live at once.
  void threadsLeftByCancelledLookupsKeepToFourLiveLookups() {
    const ChildResult result = runPassing("limit");
    CPPUNIT_ASSERT_EQUAL_MESSAGE(result.describe(), 0L, result.value("started_beside_4"));
    CPPUNIT_ASSERT_MESSAGE(result.describe(), result.value("live_at_once") <= 4);
  }

  // A lookup waiting behind 4 held inside getaddrinfo starts when those
  // are cancelled, while their threads are still stuck (the child checks;
  // before the fix it did not start until they were let go).
  void aWaitingLookupStartsWhenTheLookupsAheadOfItAreCancelled() {
    const ChildResult result = runPassing("cancel-ahead");
    CPPUNIT_ASSERT_EQUAL_MESSAGE(result.describe(), 1L, result.value("waiting_one_started"));
  }

  // A task's resolve(), held inside the lookup, cancelled by another
  // thread (TaskHandle::cancel()) as the task's channel shuts down, in
  // rounds: the child asserts that the task resumed exactly once, on a
  // worker, before shutdown() returned, and aborts on a hang.
  void aLookupCancelledAsItsChannelShutsDownResumesItsTaskOnAWorker() {
    const ChildResult result = runPassing("late-cancel");
    CPPUNIT_ASSERT_MESSAGE(result.describe(), result.value("rounds") >= 1);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(SlowLookupTest);

}  // namespace
