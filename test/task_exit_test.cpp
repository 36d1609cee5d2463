// SPDX-License-Identifier: Apache-2.0
// Tests of a process that exits while a channel still has tasks: a global
// or function-static channel torn down by static destruction, and a
// channel destroyed inside one of its own tasks.  Each case runs
// test/task_exit_child as a real child process (its own statics, its own
// exit) and asserts that it exits with status 0 and writes nothing to
// stderr: no sanitizer report, no crash, no failed check of its own.
#include <cppunit/extensions/HelperMacros.h>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

extern char** environ;

#ifndef EVCHAN_TASK_EXIT_CHILD
#error "EVCHAN_TASK_EXIT_CHILD must name the test/task_exit_child program"
#endif

namespace {

struct ChildResult {
  int status = 0;  // as waitpid() reports it
  std::string errorOutput;
  bool finished = false;  // false: killed after the patience ran out
};

std::string describe(const ChildResult& result) {
  std::string text;
  if (!result.finished) text = "did not exit within the patience and was killed; ";
  if (WIFEXITED(result.status)) {
    text += "exit status " + std::to_string(WEXITSTATUS(result.status));
  } else if (WIFSIGNALED(result.status)) {
    text += "killed by signal " + std::to_string(WTERMSIG(result.status));
  }
  if (!result.errorOutput.empty()) text += "; stderr:\n" + result.errorOutput;
  return text;
}

// Runs the child in `mode`, collecting its stderr until it closes (the
// child's exit).  The patience is generous: a sanitizer build writing a
// report and symbolising it takes seconds; only a hung child reaches it.
ChildResult runChild(const char* mode) {
  int pipeEnds[2];
  CPPUNIT_ASSERT_EQUAL(0, pipe(pipeEnds));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipeEnds[0]);
  posix_spawn_file_actions_addclose(&actions, pipeEnds[1]);
  const std::string program = EVCHAN_TASK_EXIT_CHILD;
  char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>(mode), nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipeEnds[1]);
  if (spawned != 0) {
    close(pipeEnds[0]);
    CPPUNIT_FAIL("posix_spawn " + program + ": " + std::strerror(spawned));
  }

  ChildResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd readable{pipeEnds[0], POLLIN, 0};
    const int ready = poll(&readable, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    char buffer[4096];
    const ssize_t n = read(pipeEnds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      result.finished = true;  // every writer closed it
      break;
    }
    result.errorOutput.append(buffer, static_cast<std::size_t>(n));
  }
  close(pipeEnds[0]);
  if (!result.finished) kill(pid, SIGKILL);
  while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

void assertCleanExit(const char* mode) {
  const ChildResult result = runChild(mode);
  CPPUNIT_ASSERT_MESSAGE(std::string("task_exit_child ") + mode + ": " + describe(result),
                         result.finished && WIFEXITED(result.status) && WEXITSTATUS(result.status) == 0 &&
                             result.errorOutput.empty());
}

class TaskExitTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(TaskExitTest);
  CPPUNIT_TEST(globalChannelWithParkedTasksExitsCleanly);
  CPPUNIT_TEST(functionStaticChannelWithParkedTasksExitsCleanly);
  CPPUNIT_TEST(channelDestroyedInItsOwnTaskExitsCleanly);
  CPPUNIT_TEST_SUITE_END();

 public:
  // A namespace-scope channel is built before the stack pool's first use,
  // so static destruction reaches it after whatever the pool built then.
  void globalChannelWithParkedTasksExitsCleanly() { assertCleanExit("global"); }

  void functionStaticChannelWithParkedTasksExitsCleanly() { assertCleanExit("static"); }

  // The destructor called from a task of the channel cannot wait for that
  // task: its task ends (and gives back its stack) after main() returned.
  void channelDestroyedInItsOwnTaskExitsCleanly() { assertCleanExit("self"); }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskExitTest);

}  // namespace
