// SPDX-License-Identifier: Apache-2.0
// Test support (POSIX): the test binary started again as a helper process.
#include "support/posix/self_process.h"

#include <cppunit/TestAssert.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

namespace evchan::test {

SelfProcess::SelfProcess(const char* variable, const std::string& role, const char* noSuchTest) {
  std::vector<std::string> variables;
  for (char** entry = environ; *entry != nullptr; ++entry) variables.emplace_back(*entry);
  variables.push_back(std::string(variable) + "=" + role);
  std::vector<char*> envp;
  for (std::string& entry : variables) envp.push_back(&entry[0]);
  envp.push_back(nullptr);
  std::string program = "/proc/self/exe";
  std::string test = noSuchTest;
  char* argv[] = {&program[0], &test[0], nullptr};
  const int error = posix_spawn(&pid_, program.c_str(), nullptr, nullptr, argv, envp.data());
  if (error != 0) pid_ = -1;
  CPPUNIT_ASSERT_EQUAL_MESSAGE("posix_spawn: " + std::string(std::strerror(error)), 0, error);
}

SelfProcess::~SelfProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void SelfProcess::kill9() const {
  if (pid_ > 0) kill(pid_, SIGKILL);
}

int SelfProcess::exitStatus(std::chrono::milliseconds patience) {
  CPPUNIT_ASSERT_MESSAGE("the child process was already reaped", pid_ > 0);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    CPPUNIT_ASSERT_MESSAGE("the child process did not end", std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace evchan::test
