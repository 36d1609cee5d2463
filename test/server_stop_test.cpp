// SPDX-License-Identifier: Apache-2.0
// The canonical server (examples/echo_server) stopped by a real signal:
// it runs as a child process, clients hold connections in every state
// (idle, echoing, closing during the grace period), the test sends SIGTERM
// (or SIGINT) and asserts that the child exits with status 0, that every
// connection ended (end of file or reset, never a hang), that the child's
// report counts each connection where it belongs, and that the child
// closed every descriptor it opened.  The child's stderr goes into the
// same pipe: any line beyond the expected ones (a sanitizer's leak
// report, an unhandled-exception line) fails the test.
#include <cppunit/extensions/HelperMacros.h>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evchan/evchan.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/leak_checked_fixture.h"
#include "support/slowdown.h"
#include "support/waiting.h"

extern char** environ;

#ifndef EVCHAN_ECHO_SERVER
#error "EVCHAN_ECHO_SERVER must name the examples/echo_server program"
#endif

namespace {

using namespace std::chrono_literals;
using evchan::TcpSocket;

// The server as a child process, its stdout and stderr in one pipe.
class ServerChild {
 public:
  explicit ServerChild(long graceMs) {
    int ends[2];
    CPPUNIT_ASSERT_EQUAL(0, pipe(ends));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, ends[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, ends[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, ends[0]);
    posix_spawn_file_actions_addclose(&actions, ends[1]);
    const std::string program = EVCHAN_ECHO_SERVER;
    const std::string grace = std::to_string(graceMs);
    char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>("--grace-ms"),
                    const_cast<char*>(grace.c_str()), const_cast<char*>("--check-descriptors"), nullptr};
    const int spawned = posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(ends[1]);
    output_ = ends[0];
    if (spawned != 0) {
      pid_ = -1;
      CPPUNIT_FAIL("posix_spawn " + program + ": " + std::strerror(spawned));
    }
  }

  ~ServerChild() {
    if (pid_ > 0) {  // a failed test: do not leave the child behind
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(output_);
  }

  // Reads until the "listening" line and returns its port.
  int port() {
    const auto deadline = std::chrono::steady_clock::now() + evchan::test::generous(20s);
    while (text_.find('\n') == std::string::npos) {
      CPPUNIT_ASSERT_MESSAGE("no listening line; output so far: " + text_, readSome(deadline));
    }
    unsigned port = 0;
    char end = 0;
    CPPUNIT_ASSERT_MESSAGE("not a listening line: " + text_,
                           std::sscanf(text_.c_str(), "listening on 127.0.0.1:%u%c", &port, &end) == 2 && end == '\n');
    return static_cast<int>(port);
  }

  void signal(int number) { CPPUNIT_ASSERT_EQUAL(0, kill(pid_, number)); }

  // Reads everything until the child closes its end, then reaps it; the
  // exit status as waitpid() reports it.
  int finish() {
    const auto deadline = std::chrono::steady_clock::now() + evchan::test::generous(60s);
    while (readSome(deadline)) {
    }
    int status = 0;
    CPPUNIT_ASSERT_MESSAGE("the server did not exit; output: " + text_,
                           evchan::test::eventually([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }));
    pid_ = -1;
    return status;
  }

  const std::string& output() const { return text_; }

 private:
  // False at end of file or at the deadline.
  bool readSome(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd readable{output_, POLLIN, 0};
      const int ready = poll(&readable, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
      char buffer[4096];
      const ssize_t n = read(output_, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      text_.append(buffer, static_cast<std::size_t>(n));
      return true;
    }
  }

  pid_t pid_ = -1;
  int output_ = -1;
  std::string text_;
};

// How a client's connection ended.
enum class Ending { Open, EndOfFile, Reset, Failed };

bool endedByServer(const std::error_code& ec) {
  return ec == evchan::Errc::end_of_stream || ec == std::errc::connection_reset || ec == std::errc::broken_pipe;
}

// A client connection with one echo round trip done (so the server has
// accepted it before the signal comes).
TcpSocket connectAndEcho(int port) {
  TcpSocket socket = TcpSocket::connect({"127.0.0.1", port}, evchan::test::generous(10s));
  socket.setTimeout(evchan::test::generous(20s));
  socket.writeAll("ping", 4);
  char reply[4];
  socket.readExactly(reply, sizeof reply);
  CPPUNIT_ASSERT_EQUAL(std::string("ping"), std::string(reply, 4));
  return socket;
}

// Waits (its own timeout) for the server to end an idle connection.
Ending awaitEnd(TcpSocket& socket) {
  char byte;
  std::error_code ec;
  socket.readSome(&byte, 1, ec);
  return ec == evchan::Errc::end_of_stream ? Ending::EndOfFile : endedByServer(ec) ? Ending::Reset : Ending::Failed;
}

// Echoes 1 KiB at a time, checking each reply, until the server ends it.
Ending echoUntilEnd(TcpSocket& socket, std::atomic<int>& rounds) {
  char out[1024];
  char in[sizeof out];
  for (unsigned i = 0;; ++i) {
    std::memset(out, static_cast<int>('a' + i % 26), sizeof out);
    std::error_code ec;
    socket.writeAll(out, sizeof out, ec);
    if (!ec) socket.readExactly(in, sizeof in, ec);
    if (ec) return ec == evchan::Errc::end_of_stream ? Ending::EndOfFile : endedByServer(ec) ? Ending::Reset : Ending::Failed;
    if (std::memcmp(in, out, sizeof in) != 0) return Ending::Failed;
    ++rounds;
  }
}

const char* name(Ending ending) {
  switch (ending) {
    case Ending::Open: return "still open";
    case Ending::EndOfFile: return "end of file";
    case Ending::Reset: return "reset";
    case Ending::Failed: return "failed (timeout or a wrong byte)";
  }
  return "?";
}

class ServerStopTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ServerStopTest);
  CPPUNIT_TEST(sigtermEndsEveryConnection);
  CPPUNIT_TEST(sigintWithoutConnections);
  CPPUNIT_TEST_SUITE_END();

 public:
  // 4 idle connections, 4 echoing without pause, 4 that their clients
  // close during the grace period: 12 served, 4 ended by their clients,
  // 8 cancelled, and every client sees its connection end.
  void sigtermEndsEveryConnection() {
    constexpr int kEach = 4;
    const auto grace = evchan::test::generous(1500ms);
    ServerChild server(std::chrono::duration_cast<std::chrono::milliseconds>(grace).count());
    const int port = server.port();

    std::vector<TcpSocket> idle, closing, echoing;
    for (int i = 0; i < kEach; ++i) {
      idle.push_back(connectAndEcho(port));
      closing.push_back(connectAndEcho(port));
      echoing.push_back(connectAndEcho(port));
    }
    std::vector<Ending> endings(3 * kEach, Ending::Open);
    std::vector<std::atomic<int>> rounds(kEach);
    std::vector<std::thread> clients;
    for (int i = 0; i < kEach; ++i) {
      clients.emplace_back([&, i] { endings[i] = awaitEnd(idle[i]); });
      clients.emplace_back([&, i] { endings[kEach + i] = echoUntilEnd(echoing[i], rounds[i]); });
    }
    // Every echoing client is under way before the signal.
    CPPUNIT_ASSERT(evchan::test::eventually([&] {
      for (auto& r : rounds)
        if (r.load() < 3) return false;
      return true;
    }));

    const auto signalled = std::chrono::steady_clock::now();
    server.signal(SIGTERM);
    // Within the grace period these clients finish: the server counts
    // them as ended by their clients, not cancelled.
    std::this_thread::sleep_for(grace / 5);
    for (TcpSocket& socket : closing) socket.close();
    // The echoing clients are still served during the grace period.
    const int roundsBefore = rounds[0].load();
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return rounds[0].load() > roundsBefore; }, grace / 5));

    const int status = server.finish();
    const auto stopTook = std::chrono::steady_clock::now() - signalled;
    for (std::thread& client : clients) client.join();

    CPPUNIT_ASSERT_MESSAGE("exit status " + std::to_string(status) + "; output:\n" + server.output(),
                           WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (std::size_t i = 0; i < endings.size(); ++i) {
      if (i >= static_cast<std::size_t>(kEach)) continue;  // the echoing ones are checked below
      CPPUNIT_ASSERT_MESSAGE(std::string("idle connection: ") + name(endings[i]), endings[i] == Ending::EndOfFile);
    }
    for (int i = 0; i < kEach; ++i) {
      const Ending ending = endings[kEach + i];
      CPPUNIT_ASSERT_MESSAGE(std::string("echoing connection: ") + name(ending),
                             ending == Ending::EndOfFile || ending == Ending::Reset);
    }
    CPPUNIT_ASSERT_MESSAGE("the stop took longer than the grace period allows",
                           stopTook >= grace && stopTook < grace + evchan::test::generous(10s));
    assertReport(server.output(), 15, 3 * kEach, kEach, 2 * kEach);
  }

  void sigintWithoutConnections() {
    ServerChild server(evchan::test::generous(10s) / 1ms);  // no connection: no grace period to wait
    server.port();
    const auto signalled = std::chrono::steady_clock::now();
    server.signal(SIGINT);
    const int status = server.finish();
    CPPUNIT_ASSERT_MESSAGE("exit status " + std::to_string(status) + "; output:\n" + server.output(),
                           WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CPPUNIT_ASSERT(std::chrono::steady_clock::now() - signalled < evchan::test::generous(5s));
    assertReport(server.output(), 2, 0, 0, 0);
  }

 private:
  // The whole output: the listening line, the report, the descriptor
  // counts (equal), and nothing else.
  static void assertReport(const std::string& output, int signal, int served, int ended, int cancelled) {
    const std::size_t first = output.find('\n');
    const std::size_t second = first == std::string::npos ? first : output.find('\n', first + 1);
    CPPUNIT_ASSERT_MESSAGE("unexpected output:\n" + output, second != std::string::npos);
    const std::string report = "stopped by signal " + std::to_string(signal) + ": " + std::to_string(served) +
                               " connections served, " + std::to_string(ended) + " ended by their clients, " +
                               std::to_string(cancelled) + " cancelled";
    CPPUNIT_ASSERT_EQUAL(report, output.substr(first + 1, second - first - 1));
    const std::string rest = output.substr(second + 1);
    int before = -1;
    int after = -2;
    int consumed = 0;
    CPPUNIT_ASSERT_MESSAGE("unexpected output after the report:\n" + rest,
                           std::sscanf(rest.c_str(), "descriptors: %d open before, %d after\n%n", &before, &after,
                                       &consumed) == 2 &&
                               static_cast<std::size_t>(consumed) == rest.size());
    CPPUNIT_ASSERT_EQUAL_MESSAGE("descriptors left open by the server", before, after);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ServerStopTest);

}  // namespace
