// SPDX-License-Identifier: Apache-2.0
// OpensslChild: posix_spawnp with two pipes.
#include "support/posix/openssl_child.h"

#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <system_error>
#include <thread>

#include <evchan/endpoint.h>

#include "support/diagnostics.h"
#include "support/slowdown.h"

extern char** environ;

namespace evchan::test {

bool OpensslChild::installed() { return std::system("command -v openssl >/dev/null 2>&1") == 0; }

OpensslChild::OpensslChild(const std::vector<std::string>& arguments) {
  int input[2], output[2];
  CPPUNIT_ASSERT_EQUAL(0, pipe2(input, O_CLOEXEC));
  CPPUNIT_ASSERT_EQUAL(0, pipe2(output, O_CLOEXEC));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input[0], 0);
  posix_spawn_file_actions_adddup2(&actions, output[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);  // its chatter
  std::vector<std::string> all{"openssl"};
  all.insert(all.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  const int spawned = posix_spawnp(&pid_, "openssl", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(input[0]);
  ::close(output[1]);
  stdin_ = input[1];
  stdout_ = output[0];
  if (spawned != 0) pid_ = -1;
  CPPUNIT_ASSERT_EQUAL_MESSAGE("posix_spawnp openssl", 0, spawned);
}

OpensslChild::~OpensslChild() {
  closeInput();
  if (stdout_ >= 0) ::close(stdout_);
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
}

void OpensslChild::write(const std::string& text) {
  CPPUNIT_ASSERT_EQUAL(static_cast<ssize_t>(text.size()), ::write(stdin_, text.data(), text.size()));
}

void OpensslChild::closeInput() {
  if (stdin_ >= 0) ::close(stdin_);
  stdin_ = -1;
}

std::string OpensslChild::readAll() {
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(stdout_, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<std::size_t>(n));
  return text;
}

template <class Condition>
bool OpensslChild::readUntil(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + generous(std::chrono::seconds(20));
  char buffer[4096];
  while (!condition() && std::chrono::steady_clock::now() < deadline) {
    pollfd ready{stdout_, POLLIN, 0};
    if (poll(&ready, 1, 100) <= 0) continue;
    const ssize_t n = ::read(stdout_, buffer, sizeof buffer);
    if (n <= 0) break;
    seen_.append(buffer, static_cast<std::size_t>(n));
  }
  return condition();
}

bool OpensslChild::waitForOutput(const std::string& part) {
  return readUntil([&] { return seen_.find(part) != std::string::npos; });
}

std::string OpensslChild::lineAfter(const std::string& marker) {
  auto end = [&] {
    const std::size_t at = seen_.find(marker);
    return at == std::string::npos ? at : seen_.find('\n', at);
  };
  if (!readUntil([&] { return end() != std::string::npos; })) return {};
  const std::size_t from = seen_.find(marker) + marker.size();
  return seen_.substr(from, end() - from);
}

int OpensslChild::wait() {
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + generous(std::chrono::seconds(10));
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return status;
}

TcpSocket connectWhenListening(int port) {
  const auto deadline = std::chrono::steady_clock::now() + generous(std::chrono::seconds(20));
  for (;;) {
    std::error_code ec;
    TcpSocket socket = TcpSocket::connect(Endpoint("127.0.0.1", port), std::chrono::seconds(5), ec);
    if (!ec) return socket;
    CPPUNIT_ASSERT_MESSAGE("connect to openssl s_server: " + describe(ec), std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace evchan::test
