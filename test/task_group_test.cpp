// SPDX-License-Identifier: Apache-2.0
// Tests of TaskGroup: spawn into a group, join all, cancel all, the
// destructor's cancel and join, failures (the first rethrown, the others
// reported, cancelOnFailure), and the group used from its own members.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/stderr_capture.h"
#include "support/task_reports.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::EventChannel;
using evchan::Notification;
using evchan::SystemError;
using evchan::TaskGroup;
using evchan::TaskHandle;
using evchan::TaskId;
using evchan::test::EndWitness;
using evchan::test::eventually;
using evchan::test::makeReportingChannel;
using evchan::test::MemberFailure;
using evchan::test::Reports;
namespace this_task = evchan::this_task;

std::string codeOf(const std::function<void()>& call) {
  try {
    call();
    return "returned";
  } catch (const SystemError& e) {
    return evchan::test::describe(e.code());
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  }
}

}  // namespace

class TaskGroupTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskGroupTest);
  CPPUNIT_TEST(testJoinWaitsForEveryMemberIncludingNestedOnes);
  CPPUNIT_TEST(testFirstFailureRethrownOthersReported);
  CPPUNIT_TEST(testCancelOnFailureCancelsTheSiblings);
  CPPUNIT_TEST(testCancelEndsEveryMemberWithoutAFailure);
  CPPUNIT_TEST(testDestructorCancelsAndJoins);
  CPPUNIT_TEST(testFailureEndingDuringShutdownIsReportedOnce);
  CPPUNIT_TEST(testJoinFromAMemberIsADeadlockError);
  CPPUNIT_TEST(testDestroyedFromItsOwnMember);
  CPPUNIT_TEST(testMoveOnlyMembersAndErrors);
  CPPUNIT_TEST(testManyEndedMembersBesideRunningOnes);
  CPPUNIT_TEST(testRefusedMembersCapturesMayUseTheGroup);
  CPPUNIT_TEST(testCancelEndsIdleConnectionsAndLetsShieldedRequestsFinish);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testJoinWaitsForEveryMemberIncludingNestedOnes() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    TaskGroup group(*channel);
    std::atomic<int> ended{0};
    Notification release;
    for (int i = 0; i < 8; ++i) {
      group.spawn([&] {
        release.wait();
        // A member spawning a member while join() waits.
        group.spawn([&] {
          this_task::sleepFor(1ms);
          ++ended;
        });
        ++ended;
      });
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(8), group.size());
    release.notify();
    group.join();
    CPPUNIT_ASSERT_EQUAL(16, ended.load());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), group.size());
    // Usable again, and joinable from a task too.
    TaskHandle joiner = channel->spawn([&] {
      group.spawn([&] { ++ended; });
      group.join();
    });
    joiner.join();
    CPPUNIT_ASSERT_EQUAL(17, ended.load());
  }

  // A long-lived group (a server's, one member per connection) forgets its
  // ended members from time to time while it spawns more: through many
  // such passes it still waits for every running member, and reports each
  // failure once.
  void testManyEndedMembersBesideRunningOnes() {
    constexpr int kParked = 100;
    constexpr int kShort = 3000;
    constexpr int kFailEvery = 500;
    Reports reports;
    std::atomic<int> parked{0}, unwound{0};
    {
      std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
      TaskGroup group(*channel);
      for (int i = 0; i < kParked; ++i) {
        group.spawn([&] {
          EndWitness witness{unwound};
          ++parked;
          this_task::sleepFor(std::chrono::hours(1));
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return parked.load() == kParked; }));
      for (int i = 1; i <= kShort; ++i) {
        TaskHandle member = group.spawn([i] {
          if (i % kFailEvery == 0) throw MemberFailure("failure " + std::to_string(i / kFailEvery));
        });
        // Most end before the next spawn, so that ended members pile up.
        if (i % 10 != 0) CPPUNIT_ASSERT(eventually([&] { return member.done(); }));
      }
      CPPUNIT_ASSERT_EQUAL(0, unwound.load());
      group.cancel();
      CPPUNIT_ASSERT_EQUAL(std::string("exception: failure 1"), codeOf([&] { group.join(); }));
      // join() returned only once every parked member had unwound.
      CPPUNIT_ASSERT_EQUAL(kParked, unwound.load());
      CPPUNIT_ASSERT_EQUAL(std::size_t(kShort / kFailEvery - 1), reports.count());
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(kShort / kFailEvery - 1), reports.count());
  }

  void testFirstFailureRethrownOthersReported() {
    Reports reports;
    {
      std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
      TaskGroup group(*channel);
      std::atomic<bool> firstFailed{false};
      TaskHandle first = group.spawn([&] {
        firstFailed = true;
        throw MemberFailure("first");
      });
      CPPUNIT_ASSERT(eventually([&] { return first.done(); }));
      group.spawn([] { throw MemberFailure("second"); });
      group.spawn([] { throw MemberFailure("third"); });
      group.spawn([] {});
      CPPUNIT_ASSERT_EQUAL(std::string("exception: first"), codeOf([&] { group.join(); }));
      // The others went to the handler, once each.
      CPPUNIT_ASSERT_EQUAL(std::size_t(2), reports.count());
      // The member's own handle still tells its end.
      CPPUNIT_ASSERT_EQUAL(std::string("exception: first"), codeOf([&] { first.join(); }));
      first = TaskHandle();
      group.join();  // nothing left: returns
    }
    std::lock_guard<std::mutex> lock(reports.mutex);
    CPPUNIT_ASSERT_EQUAL(std::size_t(2), reports.whats.size());
    std::sort(reports.whats.begin(), reports.whats.end());
    CPPUNIT_ASSERT_EQUAL(std::string("second"), reports.whats[0]);
    CPPUNIT_ASSERT_EQUAL(std::string("third"), reports.whats[1]);
  }

  void testCancelOnFailureCancelsTheSiblings() {
    Reports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    TaskGroup::Options options;
    options.cancelOnFailure = true;
    TaskGroup group(*channel, options);
    std::atomic<int> parked{0}, unwound{0};
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    for (int i = 0; i < 3; ++i) {
      group.spawn([&] {
        EndWitness witness{unwound};
        ++parked;
        this_task::sleepFor(1h);
      });
    }
    group.spawn([&] {
      EndWitness witness{unwound};
      ++parked;
      char byte;
      pair.server.readSome(&byte, 1);
    });
    CPPUNIT_ASSERT(eventually([&] { return parked.load() == 4; }));
    group.spawn([] { throw MemberFailure("connection lost"); });
    CPPUNIT_ASSERT_EQUAL(std::string("exception: connection lost"), codeOf([&] { group.join(); }));
    CPPUNIT_ASSERT_EQUAL(4, unwound.load());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());  // the siblings' cancellations are no failures
  }

  void testCancelEndsEveryMemberWithoutAFailure() {
    Reports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    TaskGroup group(*channel);
    std::atomic<int> parked{0}, unwound{0};
    for (int i = 0; i < 5; ++i) {
      group.spawn([&] {
        EndWitness witness{unwound};
        ++parked;
        Notification never;
        never.wait();
      });
    }
    CPPUNIT_ASSERT(eventually([&] { return parked.load() == 5; }));
    group.cancel();
    group.cancel();  // twice: harmless
    // Spawned after the cancel: starts cancelled.
    group.spawn([&] {
      EndWitness witness{unwound};
      this_task::yield();
    });
    group.join();
    CPPUNIT_ASSERT_EQUAL(6, unwound.load());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());
    // The join cleared the cancellation: a new member runs normally.
    std::atomic<bool> ran{false};
    group.spawn([&] {
      this_task::yield();
      ran = true;
    });
    group.join();
    CPPUNIT_ASSERT(ran.load());
  }

  void testDestructorCancelsAndJoins() {
    Reports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    std::atomic<int> parked{0}, unwound{0};
    {
      TaskGroup group(*channel);
      for (int i = 0; i < 4; ++i) {
        group.spawn([&] {
          EndWitness witness{unwound};
          ++parked;
          this_task::sleepFor(1h);
        });
      }
      group.spawn([] { throw MemberFailure("never joined"); });
      CPPUNIT_ASSERT(eventually([&] { return parked.load() == 4; }));
    }
    CPPUNIT_ASSERT_EQUAL(4, unwound.load());  // all ended before the destructor returned
    // The failure nobody joined went to the handler.
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), reports.count());
    // Destroyed while its owner task unwinds from its own cancellation:
    // the destructor still waits for the member's shielded goodbye.
    std::atomic<bool> goodbyeSaid{false}, ownerParked{false};
    TaskHandle owner = channel->spawn([&] {
      TaskGroup group(this_task::channel());
      group.spawn([&] {
        this_task::CancellationShield shield;
        this_task::sleepFor(20ms);
        goodbyeSaid = true;
      });
      ownerParked = true;
      Notification never;
      never.wait();
    });
    CPPUNIT_ASSERT(eventually([&] { return ownerParked.load(); }));
    CPPUNIT_ASSERT(owner.cancel());
    CPPUNIT_ASSERT_EQUAL(evchan::test::describe(std::make_error_code(std::errc::operation_canceled)),
                         codeOf([&] { owner.join(); }));
    CPPUNIT_ASSERT(goodbyeSaid.load());
  }

  // A member failing while the channel's shutdown cuts the destructor's
  // wait short is reported exactly once.  The member below records its
  // failure, then its bound argument's destructor holds it (not yet ended)
  // while the shutdown ends the owner's wait.  (Before, the destructor
  // reported the failure and the member's handle reported it again.)
  void testFailureEndingDuringShutdownIsReportedOnce() {
    struct HeldUntilReleased {
      std::atomic<bool>* holding;
      std::atomic<bool>* release;
      HeldUntilReleased(std::atomic<bool>* holdingFlag, std::atomic<bool>* releaseFlag) noexcept
          : holding(holdingFlag), release(releaseFlag) {}
      HeldUntilReleased(HeldUntilReleased&& other) noexcept
          : holding(std::exchange(other.holding, nullptr)), release(std::exchange(other.release, nullptr)) {}
      ~HeldUntilReleased() {
        if (release == nullptr) return;
        *holding = true;
        while (!release->load()) std::this_thread::yield();
      }
    };
    Reports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    Notification go;
    std::atomic<bool> destroying{false}, holding{false}, release{false};
    TaskHandle owner = channel->spawn([&] {
      TaskGroup group(this_task::channel());
      group.spawn(
          [&go](HeldUntilReleased&&) {  // kept in the task, destroyed after the failure is recorded
            {
              this_task::CancellationShield shield;  // the destructor's cancel waits
              go.wait();
            }
            throw MemberFailure("failed while its group was destroyed");
          },
          HeldUntilReleased(&holding, &release));
      destroying = true;
    });
    CPPUNIT_ASSERT(eventually([&] { return destroying.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // owner in ~TaskGroup, member in wait()
    go.notify();
    CPPUNIT_ASSERT(eventually([&] { return holding.load(); }));  // failure recorded, member not ended
    std::future<void> shutdown = std::async(std::launch::async, [&] { channel->shutdown(); });
    CPPUNIT_ASSERT(eventually([&] { return owner.done(); }));  // its wait was cut short
    release = true;
    shutdown.get();
    channel.reset();
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), reports.count());
    CPPUNIT_ASSERT_EQUAL(std::string("failed while its group was destroyed"), reports.whats.front());
  }

  void testJoinFromAMemberIsADeadlockError() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    TaskGroup group(*channel);
    std::string seen;
    group.spawn([&] { seen = codeOf([&] { group.join(); }); });
    group.join();
    CPPUNIT_ASSERT_EQUAL(evchan::test::describe(std::make_error_code(std::errc::resource_deadlock_would_occur)), seen);
  }

  void testDestroyedFromItsOwnMember() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    std::atomic<int> parked{0}, unwound{0};
    std::atomic<bool> wentOn{false};
    std::atomic<TaskId> destroyer{0};
    std::string printed;
    {
      evchan::test::StderrCapture capture;
      auto group = std::make_shared<std::unique_ptr<TaskGroup>>(std::make_unique<TaskGroup>(*channel));
      for (int i = 0; i < 3; ++i) {
        (*group)->spawn([&] {
          EndWitness witness{unwound};
          ++parked;
          this_task::sleepFor(1h);
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return parked.load() == 3; }));
      TaskHandle task = (*group)->spawn([&, group] {
        destroyer = this_task::id();
        group->reset();  // the group's destructor, in its own member
        this_task::yield();  // not cancelled: it goes on
        wentOn = true;
      });
      task.join();
      printed = capture.text();
    }
    CPPUNIT_ASSERT(wentOn.load());
    CPPUNIT_ASSERT_EQUAL(3, unwound.load());
    const std::string expected = "evchan: TaskGroup destroyed from its own task " + std::to_string(destroyer.load()) +
                                 " (not allowed): the other members are cancelled and waited for; the task goes on "
                                 "outside the group\n";
    CPPUNIT_ASSERT_EQUAL(expected, printed);
  }

  void testMoveOnlyMembersAndErrors() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    TaskGroup group(*channel);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    group.spawn(
        [](evchan::TcpSocket socket, std::unique_ptr<int> n) {
          socket.writeAll("ok", 2);
          CPPUNIT_ASSERT_EQUAL(3, *n);
        },
        std::move(pair.server), std::make_unique<int>(3));
    char reply[2];
    pair.client.readExactly(reply, 2);
    group.join();
    CPPUNIT_ASSERT_EQUAL(std::string("ok"), std::string(reply, 2));
    void (*none)() = nullptr;
    CPPUNIT_ASSERT_EQUAL(evchan::test::describe(std::make_error_code(std::errc::invalid_argument)),
                         codeOf([&] { group.spawn(none); }));
    channel->shutdown();
    CPPUNIT_ASSERT_EQUAL(evchan::test::describe(evchan::Errc::channel_shut_down),
                         codeOf([&] { group.spawn([] {}); }));
  }

  // A refused spawn destroys the member's function; a capture whose
  // destructor uses the group (here size() and cancel(), which take its
  // lock) must find the group's lock free.  It deadlocked before (the
  // function was destroyed inside spawn(), under that lock).
  void testRefusedMembersCapturesMayUseTheGroup() {
    struct UsesGroupWhenDestroyed {
      TaskGroup* group;
      std::size_t* sizeSeen;
      UsesGroupWhenDestroyed(TaskGroup* g, std::size_t* seen) : group(g), sizeSeen(seen) {}
      UsesGroupWhenDestroyed(UsesGroupWhenDestroyed&& other) noexcept
          : group(std::exchange(other.group, nullptr)), sizeSeen(other.sizeSeen) {}
      UsesGroupWhenDestroyed(const UsesGroupWhenDestroyed&) = delete;
      UsesGroupWhenDestroyed& operator=(const UsesGroupWhenDestroyed&) = delete;
      UsesGroupWhenDestroyed& operator=(UsesGroupWhenDestroyed&&) = delete;
      ~UsesGroupWhenDestroyed() {
        if (group == nullptr) return;  // moved from
        *sizeSeen = group->size();
        group->cancel();
      }
    };
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    TaskGroup group(*channel);
    channel->shutdown();
    std::size_t sizeSeen = 99;
    CPPUNIT_ASSERT_EQUAL(evchan::test::describe(evchan::Errc::channel_shut_down), codeOf([&] {
                           group.spawn([held = UsesGroupWhenDestroyed(&group, &sizeSeen)] { (void)held; });
                         }));
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, sizeSeen);
    // An invalid stack size is refused by the same path, before the channel.
    sizeSeen = 99;
    evchan::TaskOptions tooLarge;
    tooLarge.stackSize = evchan::kMaxTaskStackSize + 1;
    CPPUNIT_ASSERT_EQUAL(evchan::test::describe(std::make_error_code(std::errc::invalid_argument)), codeOf([&] {
                           group.spawn(tooLarge, [held = UsesGroupWhenDestroyed(&group, &sizeSeen)] { (void)held; });
                         }));
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, sizeSeen);
    group.join();
  }

  // docs/servers.md, "Keep-alive connections": each request answered
  // under a CancellationShield, the group cancelled at the stop.  A
  // connection between two requests ends at once; one whose request is
  // being answered sends the whole answer, then ends at its next wait.
  void testCancelEndsIdleConnectionsAndLetsShieldedRequestsFinish() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    TaskGroup connections(*channel);
    Notification slowRequestBegun, finishSlowRequest;
    auto serve = [&](evchan::TcpSocket socket) {
      socket.setTimeout(10s);
      for (;;) {
        char request = 0;
        socket.readExactly(&request, 1);  // idle here
        this_task::CancellationShield shield;
        if (request == 's') {  // a slow answer
          slowRequestBegun.notify();
          finishSlowRequest.wait();
        }
        socket.writeAll("answer", 6);
      }
    };
    evchan::test::ConnectedPair idle = evchan::test::connectPair();
    evchan::test::ConnectedPair busy = evchan::test::connectPair();
    idle.client.setTimeout(10s);
    busy.client.setTimeout(10s);
    connections.spawn(serve, std::move(idle.server));
    connections.spawn(serve, std::move(busy.server));
    char answer[6];
    idle.client.writeAll("f", 1);
    idle.client.readExactly(answer, sizeof answer);  // answered: now between two requests
    busy.client.writeAll("s", 1);
    CPPUNIT_ASSERT(slowRequestBegun.waitFor(10s));

    connections.cancel();
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, idle.client.readSome(answer, sizeof answer, ec));
    ASSERT_ERROR(evchan::Errc::end_of_stream, ec);  // ended, its idle wait cancelled
    // The busy one is still answering: open, silent.
    busy.client.setTimeout(100ms);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, busy.client.readSome(answer, sizeof answer, ec));
    ASSERT_ERROR(std::errc::timed_out, ec);
    busy.client.setTimeout(10s);
    finishSlowRequest.notify();
    CPPUNIT_ASSERT_EQUAL(sizeof answer, busy.client.readExactly(answer, sizeof answer, ec));
    CPPUNIT_ASSERT_EQUAL(std::string("answer"), std::string(answer, sizeof answer));
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, busy.client.readSome(answer, sizeof answer, ec));
    ASSERT_ERROR(evchan::Errc::end_of_stream, ec);  // then ended at its next wait
    connections.join();  // cancelled members are no failures
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskGroupTest);
