// SPDX-License-Identifier: Apache-2.0
// What the suites of tasks taking turns at a shared listener or UDP socket
// share (task_turns_test, task_turns_adversarial_test): tagged clients, a
// log of what acceptor tasks accepted, tasks spawned to wait in line, and
// a guard that ends and joins the tasks however a test ends.
#ifndef EVCHAN_TEST_SUPPORT_TURN_TAKERS_H
#define EVCHAN_TEST_SUPPORT_TURN_TAKERS_H

#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <evchan/evchan.h>
#ifndef _WIN32
#include <evchan/unix_socket.h>
#endif

#include "support/diagnostics.h"
#include "support/run_where.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace evchan::test {

inline TcpListener loopbackListener() { return TcpListener::listen(Endpoint("127.0.0.1", 0)); }

inline UdpSocket boundUdpSocket() {
  UdpSocket socket = UdpSocket::open(AddressFamily::IPv4);
  socket.bind(Address::fromNumeric("127.0.0.1", 0, AddressFamily::IPv4));
  return socket;
}

/// A client that sends its two-byte tag and stays open.
inline TcpSocket connectTagged(const TcpListener& listener, std::uint16_t tag) {
  TcpSocket client = TcpSocket::connect(listener.localAddress(), generous(std::chrono::seconds(10)));
  client.writeAll(&tag, sizeof tag);
  return client;
}

#ifndef _WIN32
inline UnixSocket connectTagged(const UnixListener& listener, std::uint16_t tag) {
  UnixSocket client = UnixSocket::connect(listener.name(), generous(std::chrono::seconds(10)));
  client.writeAll(&tag, sizeof tag);
  return client;
}
#endif

/// The tags from..count-1.
inline std::vector<std::uint16_t> tagsUpTo(int count, int from = 0) {
  std::vector<std::uint16_t> tags;
  for (int i = from; i < count; ++i) tags.push_back(static_cast<std::uint16_t>(i));
  return tags;
}

/// What the acceptor tasks of a test saw: the connections they accepted
/// (the test thread reads their tags: a task cancelled right after its
/// accept still hands its connection over), how many each task accepted,
/// each task's error at its end and every error an accept returned, by
/// kind.
template <class Socket>
struct AcceptLog {
  explicit AcceptLog(int tasks) : perTask(tasks), lastError(tasks) {}

  std::mutex mutex;
  std::vector<Socket> accepted;
  std::vector<std::uint16_t> tags;  // of the connections read so far, in `accepted` order
  std::vector<int> perTask;
  std::vector<std::error_code> lastError;
  std::map<std::string, int> errors;  // every accept error, by describe()
  std::atomic<int> started{0};

  void record(Socket socket, int who) {
    std::lock_guard<std::mutex> lock(mutex);
    accepted.push_back(std::move(socket));
    ++perTask[who];
  }
  void recordError(const std::error_code& ec) {
    std::lock_guard<std::mutex> lock(mutex);
    ++errors[describe(ec)];
  }
  int count() {
    std::lock_guard<std::mutex> lock(mutex);
    return static_cast<int>(accepted.size());
  }
  int acceptedBy(int who) {
    std::lock_guard<std::mutex> lock(mutex);
    return perTask[who];
  }
  int errorsOf(const std::error_code& ec) {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = errors.find(describe(ec));
    return found == errors.end() ? 0 : found->second;
  }
  std::string errorText() {
    std::lock_guard<std::mutex> lock(mutex);
    std::string text;
    for (const auto& [what, count] : errors) text += what + " x" + std::to_string(count) + "; ";
    return text;
  }

  /// The tags of every connection accepted so far, sorted.
  std::vector<std::uint16_t> sortedTags() {
    std::lock_guard<std::mutex> lock(mutex);
    while (tags.size() < accepted.size()) {
      std::uint16_t tag = 0;
      accepted[tags.size()].setTimeout(generous(std::chrono::seconds(10)));
      accepted[tags.size()].readExactly(&tag, sizeof tag);
      tags.push_back(tag);
    }
    std::vector<std::uint16_t> sorted = tags;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
};

/// Accepts with `accept`, called as `Socket accept(std::error_code&)`,
/// until it fails; records that error as task `who`'s last.
template <class Socket, class Accept>
void acceptUntilError(AcceptLog<Socket>& log, int who, Accept accept) {
  ++log.started;
  for (;;) {
    std::error_code ec;
    Socket accepted = accept(ec);
    if (ec) {
      log.recordError(ec);
      std::lock_guard<std::mutex> lock(log.mutex);
      log.lastError[who] = ec;
      return;
    }
    log.record(std::move(accepted), who);
  }
}

/// The same with the listener's accept().
template <class Listener, class Socket>
void acceptUntilError(Listener& listener, AcceptLog<Socket>& log, int who) {
  acceptUntilError(log, who, [&listener](std::error_code& ec) { return listener.accept(ec); });
}

/// Spawns `count` tasks on `channel`, appended to `tasks`, one at a time:
/// task `who` (its index in `tasks`) runs `body(who)`, which adds one to
/// `started` before its call waits, and the next is spawned only once
/// `started` is who + 1 and every worker is idle, that is once task `who`
/// has parked in its call.  So they wait in the order spawned (the first
/// of an empty `tasks` inside).  Fails the test where one does not park.
template <class Body>
void spawnParked(EventChannel& channel, std::vector<TaskHandle>& tasks, int count, const std::atomic<int>& started,
                 Body body) {
  for (int i = 0; i < count; ++i) {
    const int who = static_cast<int>(tasks.size());
    tasks.push_back(spawnOrSkip(channel, [body, who] { body(who); }));
    CPPUNIT_ASSERT_MESSAGE("task " + std::to_string(who) + " did not start",
                           eventually([&] { return started.load() == who + 1; }));
    CPPUNIT_ASSERT_MESSAGE("task " + std::to_string(who) + " did not park", allWorkersIdle(channel));
  }
}

/// Spawns, as spawnParked() does, an acceptor task (acceptUntilError() on
/// `listener`) for each entry of `log` from tasks.size() on.
template <class Listener, class Socket>
void spawnAcceptors(EventChannel& channel, Listener& listener, AcceptLog<Socket>& log,
                    std::vector<TaskHandle>& tasks) {
  const int count = static_cast<int>(log.perTask.size()) - static_cast<int>(tasks.size());
  spawnParked(channel, tasks, count, log.started, [&listener, &log](int who) { acceptUntilError(listener, log, who); });
}

/// Declared after what a test's tasks use: however the test ends (a failed
/// assertion included), runs `release` (which ends their calls: closes the
/// socket they wait on) and joins them before those go.
class JoinOnExit {
 public:
  JoinOnExit(std::function<void()> release, std::vector<TaskHandle>& tasks)
      : release_(std::move(release)), tasks_(tasks) {}
  ~JoinOnExit() {
    release_();
    for (TaskHandle& task : tasks_) {
      try {
        task.join();
      } catch (...) {  // a task ended by the release may throw; what it checked is already reported
      }
    }
  }
  JoinOnExit(const JoinOnExit&) = delete;
  JoinOnExit& operator=(const JoinOnExit&) = delete;

 private:
  std::function<void()> release_;
  std::vector<TaskHandle>& tasks_;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_TURN_TAKERS_H
