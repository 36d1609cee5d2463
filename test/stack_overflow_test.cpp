// SPDX-License-Identifier: Apache-2.0
// Tests of task stack overflow as a user meets it: each case runs
// test/stack_overflow_child as a real process (an overflow ends the
// process) and checks that evchan's handler reported it, naming the task,
// instead of a bare SIGSEGV or a silent write into another stack.
//   * guarded stacks (within the guard budget): a 70 KB frame on the
//     default 64 KiB stack, in code built with and without stack-clash
//     probing; a 1 MiB frame with probing; recursion without end;
//   * unguarded stacks (beyond the budget, forced with
//     EVCHAN_GUARDED_STACKS=0): what docs/tasks.md says their canary catches,
//     an overflow that reached the stack's lowest bytes, reported when the
//     task next suspends.
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
#include <vector>

#include "support/skip.h"

extern char** environ;

#if !defined(EVCHAN_STACK_OVERFLOW_CHILD) || !defined(EVCHAN_STACK_OVERFLOW_CHILD_UNPROBED)
#error "EVCHAN_STACK_OVERFLOW_CHILD(_UNPROBED) must name test/stack_overflow_child(_unprobed)"
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

// Runs the child in `mode` with `extraEnvironment` added to ours,
// collecting its stderr until it closes (the child's end).
ChildResult runChild(const std::string& program, const char* mode, const std::vector<std::string>& extraEnvironment) {
  std::vector<std::string> environment(extraEnvironment);
  // Ours but for those the extra ones set (with both, the child's getenv()
  // need not pick the extra one).
  auto overridden = [&extraEnvironment](const char* variable) {
    for (const std::string& extra : extraEnvironment) {
      const std::size_t nameEnd = extra.find('=') + 1;
      if (std::strncmp(variable, extra.c_str(), nameEnd) == 0) return true;
    }
    return false;
  };
  for (char** variable = environ; *variable != nullptr; ++variable) {
    if (!overridden(*variable)) environment.emplace_back(*variable);
  }
  std::vector<char*> envp;
  for (std::string& variable : environment) envp.push_back(variable.data());
  envp.push_back(nullptr);

  int pipeEnds[2];
  CPPUNIT_ASSERT_EQUAL(0, pipe(pipeEnds));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipeEnds[0]);
  posix_spawn_file_actions_addclose(&actions, pipeEnds[1]);
  char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>(mode), nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(pipeEnds[1]);
  if (spawned != 0) {
    close(pipeEnds[0]);
    CPPUNIT_FAIL("posix_spawn " + program + ": " + std::strerror(spawned));
  }

  ChildResult result;
  // Generous: a sanitizer build symbolising a report takes seconds; only
  // a hung child reaches it.
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
      result.finished = true;
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

// The id the child announced ("task <id>"), or an empty string.
std::string announcedTask(const std::string& errorOutput) {
  const std::size_t at = errorOutput.find("task ");
  if (at != 0) return std::string();
  const std::size_t end = errorOutput.find('\n', at);
  return errorOutput.substr(5, end == std::string::npos ? std::string::npos : end - 5);
}

// The child ended by evchan's report: "task stack overflow in task <id>"
// followed by `how`, then abort().
void assertReported(const std::string& program, const char* mode, const std::vector<std::string>& environment,
                    const std::string& how) {
  const ChildResult result = runChild(program, mode, environment);
  const std::string context = program + " " + mode + ": " + describe(result);
  CPPUNIT_ASSERT_MESSAGE(context, result.finished);
  const std::string task = announcedTask(result.errorOutput);
  CPPUNIT_ASSERT_MESSAGE(context, !task.empty());
  CPPUNIT_ASSERT_MESSAGE(context, result.errorOutput.find("evchan: task stack overflow in task " + task + " (" + how) !=
                                      std::string::npos);
  CPPUNIT_ASSERT_MESSAGE(context, WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGABRT);
}

// The guarded cases' environment: EVCHAN_GUARDED_STACKS empty (the
// default budget) whatever ours sets, so that their stack is guarded.
const std::vector<std::string> kDefaultBudget{"EVCHAN_GUARDED_STACKS="};

class StackOverflowTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(StackOverflowTest);
  CPPUNIT_TEST(testLargeFrameOnAGuardedStackIsReported);
  CPPUNIT_TEST(testLargeFrameWithoutProbingIsCaughtByTheGuardReserve);
  CPPUNIT_TEST(testFrameBeyondTheGuardReserveIsReportedWithStackClashProtection);
  CPPUNIT_TEST(testDeepRecursionOnAGuardedStackIsReported);
  CPPUNIT_TEST(testOverwrittenCanaryOfAnUnguardedStackIsReported);
  CPPUNIT_TEST_SUITE_END();

 public:
  // The frame is larger than the whole stack: without a guard reserve at
  // least that large (or stack-clash probing) its first write lands in the
  // neighbouring mapping.
  void testLargeFrameOnAGuardedStackIsReported() {
    assertReported(EVCHAN_STACK_OVERFLOW_CHILD, "frame", kDefaultBudget, "guard page hit");
  }

  // Built without stack-clash probing, the frame's first write skips the
  // stack's last 5 KB: the 64 KiB guard reserve still catches it (a single
  // guard page let it write into the mapping below, or fault unreported).
  void testLargeFrameWithoutProbingIsCaughtByTheGuardReserve() {
    assertReported(EVCHAN_STACK_OVERFLOW_CHILD_UNPROBED, "frame", kDefaultBudget, "guard page hit");
  }

  // A 1 MiB frame jumps over any guard reserve unless the compiler probes
  // each page of it (-fstack-clash-protection, which the build uses where
  // the compiler has it).
  void testFrameBeyondTheGuardReserveIsReportedWithStackClashProtection() {
#ifndef EVCHAN_STACK_CLASH_PROTECTION
    EVCHAN_SKIP("the compiler has no -fstack-clash-protection");
#endif
    assertReported(EVCHAN_STACK_OVERFLOW_CHILD, "hugeframe", kDefaultBudget, "guard page hit");
  }

  void testDeepRecursionOnAGuardedStackIsReported() {
    assertReported(EVCHAN_STACK_OVERFLOW_CHILD, "recursion", kDefaultBudget, "guard page hit");
  }

  void testOverwrittenCanaryOfAnUnguardedStackIsReported() {
    assertReported(EVCHAN_STACK_OVERFLOW_CHILD, "canary", {"EVCHAN_GUARDED_STACKS=0"}, "canary overwritten");
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(StackOverflowTest);

}  // namespace
