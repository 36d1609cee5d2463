// SPDX-License-Identifier: Apache-2.0
// The apr_pollset poller moving to a larger set (past the 4,096 sockets of
// its first one): a wakeup() made before the move still ends the next
// wait, and every socket watched before the move is still watched after.
// Internals (evchan::detail), linked statically; real UDP sockets.
#include <cppunit/extensions/HelperMacros.h>

#include <apr_network_io.h>
#include <apr_portable.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include <evchan/event_channel.h>

#include "apr/apr_runtime.h"
#include "poller/poller.h"
#include "support/slowdown.h"

namespace {

using evchan::Backend;
using evchan::detail::Clock;
using evchan::detail::Deadline;
using evchan::detail::kReadable;
using evchan::detail::Poller;
using evchan::detail::PoolPtr;
using evchan::detail::Readiness;
using evchan::detail::Watch;
using namespace std::chrono_literals;

// One more socket than the poller's first set holds: watching the last one
// makes the larger set, which the next wait() moves to.
constexpr int kSockets = 4096 + 1;

// A UDP socket bound to 127.0.0.1 on a port of the kernel's choosing, and
// the poller's watch of it.
struct WatchedSocket {
  apr_socket_t* socket = nullptr;
  apr_sockaddr_t* address = nullptr;
  std::unique_ptr<Watch> watch;
};

class PollsetMoveTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(PollsetMoveTest);
  CPPUNIT_TEST(testWakeupBeforeTheMoveEndsTheNextWait);
  CPPUNIT_TEST(testSocketsWatchedBeforeTheMoveAreReportedAfterIt);
  CPPUNIT_TEST_SUITE_END();

 public:
  void setUp() override {
    std::error_code ec;
    pool_ = evchan::detail::createPool(ec);
    CPPUNIT_ASSERT_MESSAGE("an APR pool: " + ec.message(), pool_ != nullptr);
    poller_ = evchan::detail::createCompiledPoller(Backend::AprPollset, ec);
    CPPUNIT_ASSERT_MESSAGE("the apr_pollset poller: " + ec.message(), poller_ != nullptr);
    sockets_.resize(kSockets);
    for (int i = 0; i < kSockets; ++i) open(sockets_[i], i);
  }

  void tearDown() override {
    for (WatchedSocket& socket : sockets_) {
      if (socket.watch != nullptr) poller_->remove(*socket.watch);
    }
    poller_.reset();
    sockets_.clear();
    pool_.reset();  // closes the sockets
  }

  // A wakeup() lands in the set current when it is made.  The move
  // destroys that set, pending wake-up and all, before the next wait: that
  // wait must still return at once rather than sleep to its deadline.
  void testWakeupBeforeTheMoveEndsTheNextWait() {
    watchAll();
    poller_->wakeup();
    const auto patience = std::chrono::duration_cast<std::chrono::milliseconds>(10s * evchan::test::slowdown());
    const Clock::time_point start = Clock::now();
    std::vector<Readiness> ready;
    const std::error_code ec = poller_->wait(ready, start + patience);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    CPPUNIT_ASSERT_MESSAGE("the wait: " + ec.message(), !ec);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("nothing was sent: nothing is readable", std::size_t(0), ready.size());
    CPPUNIT_ASSERT_MESSAGE("the wait after the move slept " + std::to_string(took.count()) +
                               " ms of its " + std::to_string(patience.count()) + " ms: the wake-up was lost",
                           took < patience / 2);
  }

  // The move adds every watched socket to the new set: a datagram to the
  // first socket watched (in the old set) and to the last (the one that
  // did not fit) is reported after it.
  void testSocketsWatchedBeforeTheMoveAreReportedAfterIt() {
    watchAll();
    WatchedSocket& first = sockets_.front();
    WatchedSocket& last = sockets_.back();
    sendTo(first);
    sendTo(last);
    bool firstReported = false;
    bool lastReported = false;
    const Deadline deadline = Clock::now() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 30s * evchan::test::slowdown());
    std::vector<Readiness> ready;
    while (!(firstReported && lastReported) && Clock::now() < deadline) {
      const std::error_code ec = poller_->wait(ready, deadline);
      CPPUNIT_ASSERT_MESSAGE("a wait: " + ec.message(), !ec);
      for (const Readiness& readiness : ready) {
        CPPUNIT_ASSERT_MESSAGE("only the two sockets sent to are readable",
                               readiness.watch == first.watch.get() || readiness.watch == last.watch.get());
        CPPUNIT_ASSERT_MESSAGE("reported readable", (readiness.flags & kReadable) != 0);
        firstReported |= readiness.watch == first.watch.get();
        lastReported |= readiness.watch == last.watch.get();
      }
    }
    CPPUNIT_ASSERT_MESSAGE("the first socket, watched before the move, reported readable", firstReported);
    CPPUNIT_ASSERT_MESSAGE("the last socket, the one that made the move, reported readable", lastReported);
  }

 private:
  void open(WatchedSocket& made, int index) {
    const std::string which = "socket " + std::to_string(index);
    apr_status_t status = apr_sockaddr_info_get(&made.address, "127.0.0.1", APR_INET, 0, 0, pool_.get());
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + ": the loopback address", APR_SUCCESS, status);
    status = apr_socket_create(&made.socket, APR_INET, SOCK_DGRAM, APR_PROTO_UDP, pool_.get());
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + ": created (the descriptor limit?)", APR_SUCCESS, status);
    status = apr_socket_bind(made.socket, made.address);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + ": bound", APR_SUCCESS, status);
    // The port the kernel chose, for sendTo().
    status = apr_socket_addr_get(&made.address, APR_LOCAL, made.socket);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + ": its address", APR_SUCCESS, status);
    apr_os_sock_t native;
    CPPUNIT_ASSERT_EQUAL(APR_SUCCESS, apr_os_sock_get(&native, made.socket));
    made.watch = std::make_unique<Watch>(made.socket, native, false);
    const std::error_code ec = poller_->add(*made.watch);
    CPPUNIT_ASSERT_MESSAGE(which + ": added: " + ec.message(), !ec);
  }

  // Watches every socket for reading, as the channel does: the watch's
  // mutex held.  The last one does not fit the first set.
  void watchAll() {
    for (int i = 0; i < kSockets; ++i) {
      Watch& watch = *sockets_[i].watch;
      std::lock_guard<std::mutex> lock(watch.mutex);
      const std::error_code ec = poller_->setInterest(watch, kReadable);
      CPPUNIT_ASSERT_MESSAGE("watching socket " + std::to_string(i) + ": " + ec.message(), !ec);
    }
  }

  void sendTo(WatchedSocket& target) {
    apr_socket_t* sender = nullptr;
    CPPUNIT_ASSERT_EQUAL(APR_SUCCESS, apr_socket_create(&sender, APR_INET, SOCK_DGRAM, APR_PROTO_UDP, pool_.get()));
    char byte = 'x';
    apr_size_t length = 1;
    CPPUNIT_ASSERT_EQUAL(APR_SUCCESS, apr_socket_sendto(sender, target.address, 0, &byte, &length));
    CPPUNIT_ASSERT_EQUAL(apr_size_t(1), length);
    apr_socket_close(sender);
  }

  PoolPtr pool_;
  std::unique_ptr<Poller> poller_;
  std::vector<WatchedSocket> sockets_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(PollsetMoveTest);

}  // namespace
