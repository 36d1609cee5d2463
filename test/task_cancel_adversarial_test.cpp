// SPDX-License-Identifier: Apache-2.0
// TaskHandle::cancel() attacked through the public API: several threads and
// tasks cancelling one task while each kind of wait ends by itself (timer,
// join on the same and another channel, join with a deadline, Mutex,
// ConditionVariable, Notification, TaskGroup, socket reads and writes on
// loopback), cancel() racing shutdown() and the channel's destruction, the
// last handle dropped while a copy cancels, spawns from many threads and
// tasks, tasks cancelling each other, CancellationShield and DeadlineScope
// under a storm of cancels, and a shielded clean-up that waits inside the
// catch block of the cancellation and rethrows it.  Every case checks that
// each wait ends exactly once and as documented, that no data is lost or
// duplicated, that the task's next wait is not cut short (a stray wake-up
// or a stale cancel), and that nothing is reported twice or hangs; run it
// under ThreadSanitizer and AddressSanitizer.
// EVCHAN_CANCEL_ADVERSARIAL_ROUNDS multiplies the rounds.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/race_scheduling.h"
#include "support/slowdown.h"
#include "support/task_reports.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::ConditionVariable;
using evchan::EventChannel;
using evchan::Mutex;
using evchan::Notification;
using evchan::SystemError;
using evchan::TaskGroup;
using evchan::TaskHandle;
using evchan::TaskId;
using evchan::test::describe;
using evchan::test::endOfCall;
using evchan::test::eventually;
using evchan::test::makeChannel;
using evchan::test::makeReportingChannel;
using evchan::test::Reports;
using evchan::test::stagger;
namespace this_task = evchan::this_task;
using Clock = std::chrono::steady_clock;

int rounds(double plain) { return evchan::test::raceRounds(plain, "EVCHAN_CANCEL_ADVERSARIAL_ROUNDS"); }

std::string endOf(TaskHandle& task) {
  return endOfCall([&task] { task.join(); });
}

// Threads that each run one action per round, released together and each
// staggered by an amount that varies with the round, so that their calls
// meet in many orders.
class Crew {
 public:
  explicit Crew(int size) {
    for (int i = 0; i < size; ++i) threads_.emplace_back([this, i] { serve(i); });
  }
  ~Crew() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    start_.notify_all();
    for (std::thread& thread : threads_) thread.join();
  }
  Crew(const Crew&) = delete;
  Crew& operator=(const Crew&) = delete;

  // Runs actions[i] on thread i (an empty one does nothing) and `mine` on
  // the caller, all at once; returns when every one is over.
  void run(int round, std::vector<std::function<void()>> actions, const std::function<void()>& mine = nullptr) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      actions_ = std::move(actions);
      actions_.resize(threads_.size());
      round_ = round;
      pending_ = static_cast<int>(threads_.size());
      awake_ = 0;
      ++generation_;
    }
    start_.notify_all();
    if (mine) {
      // In even rounds started with the crew, not before it has woken.
      while (round % 2 == 0 && awake_.load() < static_cast<int>(threads_.size())) std::this_thread::yield();
      stagger(round % 5);
      mine();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  void serve(int index) {
    std::uint64_t seen = 0;
    for (;;) {
      std::function<void()> action;
      int round;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        action = std::move(actions_[index]);  // its captures die here, after the run
        round = round_;
      }
      ++awake_;
      stagger((round * 7 + index * 3) % 5);
      if (action) action();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --pending_;
      }
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable start_, done_;
  std::vector<std::function<void()>> actions_;
  std::uint64_t generation_ = 0;
  int round_ = 0;
  int pending_ = 0;
  std::atomic<int> awake_{0};
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// One round of a wait racing cancels: what the task runs as its wait, what
// ends the wait by itself (run on the test's thread, at the same time as
// the cancels), and which ends of the wait the case allows.
struct RaceRound {
  std::function<void()> wait;
  std::function<void()> end;
  std::vector<std::string> allowed{"returned", "cancelled"};
};

// What the task saw.
struct TaskReport {
  std::string waitEnd;
  std::string shieldedSleep = "not run";
  bool shortSleep = false;
};

// A wait of 300 us that cancel() must not end: shielded, so that only a
// stale cancel() of an earlier wait (or a second wake-up of it) could.
void shieldedSleep(TaskReport& report) {
  this_task::CancellationShield shield;
  const Clock::time_point start = Clock::now();
  report.shieldedSleep = endOfCall([] { this_task::sleepFor(300us); });
  if (Clock::now() - start < 300us) report.shortSleep = true;
}

// Runs `join` (a join of `child`); when a cancel (or a deadline) ends it,
// the child is left running: joins it shielded, so that the round leaves
// nothing behind, then rethrows.
template <class Join>
void joinLeavingNothingBehind(TaskHandle& child, Join join) {
  std::exception_ptr ended;
  try {
    join();
  } catch (...) {
    ended = std::current_exception();
  }
  if (ended) {
    this_task::CancellationShield shield;
    child.join();
    std::rethrow_exception(ended);
  }
}

}  // namespace

class TaskCancelAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskCancelAdversarialTest);
  CPPUNIT_TEST(testCancelsRacingATimersEnd);
  CPPUNIT_TEST(testCancelsRacingAJoinOnTheSameChannel);
  CPPUNIT_TEST(testCancelsRacingAJoinOnAnotherChannel);
  CPPUNIT_TEST(testCancelsRacingAJoinAndItsDeadline);
  CPPUNIT_TEST(testCancelsRacingANotification);
  CPPUNIT_TEST(testCancelsRacingAConditionVariable);
  CPPUNIT_TEST(testCancelsRacingAContendedMutex);
  CPPUNIT_TEST(testCancelsRacingATaskGroupJoin);
  CPPUNIT_TEST(testCancelsRacingASocketReadLoseNoByte);
  CPPUNIT_TEST(testCancelsRacingASocketWriteLoseNoByte);
  CPPUNIT_TEST(testCancelsRacingADatagramLoseNone);
  CPPUNIT_TEST(testCancelledConditionWaitersPassTheirNotificationOn);
  CPPUNIT_TEST(testCancelRacingShutdownAndDestruction);
  CPPUNIT_TEST(testLastHandleDroppedWhileACopyCancels);
  CPPUNIT_TEST(testSpawnsFromManyThreadsAndTasksCancelled);
  CPPUNIT_TEST(testTasksCancellingEachOther);
  CPPUNIT_TEST(testJoinChainCancelledEverywhere);
  CPPUNIT_TEST(testTaskGroupCancelRacingFailuresAndJoin);
  CPPUNIT_TEST(testShieldsAndDeadlinesUnderACancelStorm);
  CPPUNIT_TEST(testShieldedCleanUpInACatchBlockThenRethrow);
  CPPUNIT_TEST(testJoinersOfEveryKindWhileTheJoinedTaskIsCancelled);
  CPPUNIT_TEST(testChannelDestroyedFromItsOwnTaskWhileThreadsCancel);
  CPPUNIT_TEST_SUITE_END();

 public:
  void setUp() override {
    LeakCheckedFixture::setUp();
    channel_ = makeChannel(2);
    other_ = makeChannel(2);
  }

  void tearDown() override {
    channel_.reset();
    other_.reset();
    LeakCheckedFixture::tearDown();
  }

  // this_task::sleepFor() ending by itself as two threads and a task of
  // another channel cancel the sleeper.
  void testCancelsRacingATimersEnd() {
    raceWaits("sleepFor", rounds(250), [](int round) {
      RaceRound r;
      r.wait = [round] { this_task::sleepFor(std::chrono::microseconds(round % 6 * 4)); };
      return r;
    });
  }

  // join() of a task of the same channel that ends at once (a yield).
  void testCancelsRacingAJoinOnTheSameChannel() {
    EventChannel& channel = *channel_;
    raceWaits("join, same channel", rounds(250), [&channel](int round) {
      RaceRound r;
      r.wait = [&channel, round] {
        TaskHandle child = channel.spawn([round] {
          if (round % 2 == 0) this_task::yield();
        });
        child.join();
      };
      return r;
    });
  }

  // join() of a task of another channel that sleeps a few microseconds.
  void testCancelsRacingAJoinOnAnotherChannel() {
    EventChannel& other = *other_;
    raceWaits("join, other channel", rounds(250), [&other](int round) {
      RaceRound r;
      r.wait = [&other, round] {
        TaskHandle child = other.spawn([round] { this_task::sleepFor(std::chrono::microseconds(round % 5 * 5)); });
        joinLeavingNothingBehind(child, [&child] { child.join(); });
      };
      return r;
    });
  }

  // The same with a this_task::DeadlineScope ending at about the same time:
  // the join's timer path, which the joined task's end, the deadline and
  // cancel() all race to end.
  void testCancelsRacingAJoinAndItsDeadline() {
    EventChannel& other = *other_;
    raceWaits("join with a deadline", rounds(250), [&other](int round) {
      RaceRound r;
      r.allowed.push_back("timed out");
      r.wait = [&other, round] {
        TaskHandle child = other.spawn([round] { this_task::sleepFor(std::chrono::microseconds(round % 5 * 10)); });
        joinLeavingNothingBehind(child, [&child, round] {
          this_task::DeadlineScope deadline(std::chrono::microseconds(round % 7 * 8));
          child.join();
        });
      };
      return r;
    });
  }

  // Notification::wait() racing notify() from the test's thread.
  void testCancelsRacingANotification() {
    auto notification = std::make_shared<Notification>();
    raceWaits("Notification::wait", rounds(250), [notification](int) {
      notification->reset();
      RaceRound r;
      r.wait = [notification] { notification->wait(); };
      r.end = [notification] { notification->notify(); };
      return r;
    });
  }

  // ConditionVariable::wait() with a predicate racing notifyOne(): a wait
  // that returns saw the predicate hold, and the task holds the mutex
  // after either end.
  void testCancelsRacingAConditionVariable() {
    struct Shared {
      Mutex mutex;
      ConditionVariable condition;
      bool ready = false;
      std::atomic<int> lockLost{0};
    };
    auto shared = std::make_shared<Shared>();
    raceWaits("ConditionVariable::wait", rounds(250), [shared](int) {
      {
        std::lock_guard<Mutex> lock(shared->mutex);
        shared->ready = false;
      }
      RaceRound r;
      r.wait = [shared] {
        std::unique_lock<Mutex> lock(shared->mutex);
        try {
          shared->condition.wait(lock, [&] { return shared->ready; });
        } catch (...) {
          if (!lock.owns_lock()) ++shared->lockLost;
          throw;
        }
        if (!lock.owns_lock() || !shared->ready) ++shared->lockLost;
      };
      r.end = [shared] {
        std::lock_guard<Mutex> lock(shared->mutex);
        shared->ready = true;
        shared->condition.notifyOne();
      };
      return r;
    });
    CPPUNIT_ASSERT_EQUAL(0, shared->lockLost.load());
  }

  // Mutex::lock() held by the test's thread, released as the cancels come:
  // cancel() never ends a lock wait, so the lock is always taken.
  void testCancelsRacingAContendedMutex() {
    auto mutex = std::make_shared<Mutex>();
    auto took = std::make_shared<std::atomic<int>>(0);
    const int n = rounds(200);
    raceWaits("Mutex::lock", n, [mutex, took](int) {
      mutex->lock();  // the test's thread: released by `end`
      RaceRound r;
      r.allowed = {"returned"};
      r.wait = [mutex, took] {
        std::lock_guard<Mutex> lock(*mutex);
        ++*took;
      };
      r.end = [mutex] { mutex->unlock(); };
      return r;
    });
    CPPUNIT_ASSERT_EQUAL(n, took->load());
  }

  // TaskGroup::join() in the task, its one member sleeping a few
  // microseconds; a cancelled join leaves the member to the destructor.
  void testCancelsRacingATaskGroupJoin() {
    EventChannel& channel = *channel_;
    raceWaits("TaskGroup::join", rounds(200), [&channel](int round) {
      RaceRound r;
      r.wait = [&channel, round] {
        TaskGroup group(channel);
        group.spawn([round] { this_task::sleepFor(std::chrono::microseconds(round % 4 * 6)); });
        group.join();
      };
      return r;
    });
  }

  // readSome() of one byte racing the byte's arrival (and, every other
  // round, a DeadlineScope's end): a cancelled or timed-out read leaves the
  // byte to the next round's reader, so every byte is read once, in order.
  void testCancelsRacingASocketReadLoseNoByte() {
    auto pair = std::make_shared<evchan::test::ConnectedPair>(evchan::test::connectPair());
    auto received = std::make_shared<int>(0);  // touched by one reader task at a time
    auto wrong = std::make_shared<std::string>();
    const int n = rounds(250);
    raceWaits("readSome", n, [pair, received, wrong](int round) {
      RaceRound r;
      r.allowed.push_back("timed out");
      r.wait = [pair, received, wrong, round] {
        // Every other round under a deadline that ends about then too.
        std::unique_ptr<this_task::DeadlineScope> deadline;
        if (round % 2 == 1) deadline = std::make_unique<this_task::DeadlineScope>(std::chrono::microseconds(round % 7 * 10));
        // Up to this round's byte: what earlier cancelled rounds left is
        // there already, this round's byte races the cancels.
        while (*received <= round) {
          char bytes[8];
          const std::size_t n = pair->server.readSome(bytes, sizeof bytes);
          if (n == 0) *wrong = "readSome returned nothing";
          for (std::size_t i = 0; i < n; ++i, ++*received) {
            if (bytes[i] != static_cast<char>('a' + *received % 26)) {
              *wrong = "byte " + std::to_string(*received) + " out of order";
            }
          }
        }
      };
      r.end = [pair, round] {
        const char byte = static_cast<char>('a' + round % 26);
        pair->client.writeAll(&byte, 1);
      };
      return r;
    });
    CPPUNIT_ASSERT_EQUAL(std::string(), *wrong);
    // What the cancelled reads left, still in order.
    pair->server.setTimeout(evchan::test::generous(5s));
    for (; *received < n; ++*received) {
      char byte = 0;
      CPPUNIT_ASSERT_EQUAL(std::size_t(1), pair->server.readSome(&byte, 1));
      CPPUNIT_ASSERT_EQUAL(static_cast<char>('a' + *received % 26), byte);
    }
    pair->server.setTimeout(1ms);
    char extra;
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), pair->server.readSome(&extra, 1, ec));
    CPPUNIT_ASSERT(ec == std::errc::timed_out);
  }

  // UdpSocket::receive() racing the datagram's arrival: a cancelled
  // receive leaves the datagram queued, so every one is received once, in
  // order.
  void testCancelsRacingADatagramLoseNone() {
    struct Sockets {
      evchan::UdpSocket receiver = evchan::UdpSocket::open(evchan::AddressFamily::IPv4);
      evchan::UdpSocket sender = evchan::UdpSocket::open(evchan::AddressFamily::IPv4);
      evchan::Address to;
      int received = 0;  // touched by one reader task at a time
      std::string wrong;
    };
    auto sockets = std::make_shared<Sockets>();
    sockets->receiver.bind(evchan::Address::fromNumeric("127.0.0.1", 0, evchan::AddressFamily::IPv4));
    sockets->to = sockets->receiver.localAddress();
    const int n = rounds(250);
    raceWaits("UdpSocket::receive", n, [sockets](int round) {
      RaceRound r;
      r.wait = [sockets, round] {
        while (sockets->received <= round) {
          int number = -1;
          const std::size_t size = sockets->receiver.receive(&number, sizeof number);
          if (size != sizeof number || number != sockets->received) {
            sockets->wrong = "datagram " + std::to_string(sockets->received) + ": got " + std::to_string(number);
          }
          ++sockets->received;
        }
      };
      r.end = [sockets, round] { sockets->sender.sendTo(&round, sizeof round, sockets->to); };
      return r;
    });
    CPPUNIT_ASSERT_EQUAL(std::string(), sockets->wrong);
    sockets->receiver.setTimeout(evchan::test::generous(5s));
    for (; sockets->received < n; ++sockets->received) {
      int number = -1;
      CPPUNIT_ASSERT_EQUAL(sizeof number, sockets->receiver.receive(&number, sizeof number));
      CPPUNIT_ASSERT_EQUAL(sockets->received, number);
    }
    sockets->receiver.setTimeout(1ms);
    int extra;
    std::error_code ec;
    sockets->receiver.receive(&extra, sizeof extra, ec);
    CPPUNIT_ASSERT(ec == std::errc::timed_out);
  }

  // A writer task with a full send buffer, writeSome() racing its peer
  // draining and two cancels: the bytes the writer was told it wrote are
  // exactly the bytes the peer reads, pattern intact.
  void testCancelsRacingASocketWriteLoseNoByte() {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    Crew crew(2);
    std::vector<char> chunk(256 * 1024);
    std::uint64_t written = 0, read = 0;
    std::uint64_t sentSum = evchan::test::kChecksumSeed, readSum = evchan::test::kChecksumSeed;
    std::vector<char> in(64 * 1024);
    const int n = rounds(40);
    int cancelled = 0;
    for (int round = 0; round < n; ++round) {
      std::atomic<bool> blocked{false};
      std::string end;
      TaskHandle writer = channel_->spawn([&] {
        end = endOfCall([&] {
          for (;;) {
            evchan::test::fillPattern(chunk.data(), chunk.size(), written);
            std::error_code ec;
            const std::size_t sent = pair.client.writeSome(chunk.data(), chunk.size(), ec);
            sentSum = evchan::test::checksum(sentSum, chunk.data(), sent);
            written += sent;
            if (ec) throw SystemError(ec, "writeSome");
            if (sent < chunk.size()) blocked = true;  // the next one waits
          }
        });
      });
      CPPUNIT_ASSERT(eventually([&] { return blocked.load() || writer.done(); }));
      const std::string where = "round " + std::to_string(round);
      TaskHandle copy = writer;
      std::atomic<int> accepted{0};
      crew.run(round, {[&] { accepted += copy.cancel() ? 1 : 0; }, [&] { accepted += copy.cancel() ? 1 : 0; }},
               [&] {
                 // Drain a little: the writer's wait may end by itself.
                 std::error_code ec;
                 const std::size_t got = pair.server.readSome(in.data(), in.size(), ec);
                 readSum = evchan::test::checksum(readSum, in.data(), got);
                 read += got;
               });
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf(writer));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("cancelled"), end);
      CPPUNIT_ASSERT_MESSAGE(where, accepted.load() >= 1);
      ++cancelled;
      // Drain what is left, so that the next round starts with empty buffers.
      pair.server.setTimeout(evchan::test::generous(5s));
      while (read < written) {
        const std::size_t got = pair.server.readSome(in.data(), std::min<std::uint64_t>(in.size(), written - read));
        readSum = evchan::test::checksum(readSum, in.data(), got);
        read += got;
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, written, read);
      CPPUNIT_ASSERT_MESSAGE(where, sentSum == readSum);
    }
    CPPUNIT_ASSERT_EQUAL(n, cancelled);
  }

  // Waiters of a ConditionVariable each taking one token; tokens come one
  // notifyOne() at a time while some waiters are cancelled.  A cancelled
  // waiter that was notified keeps its token (its wait returns), one that
  // was not leaves it to the others: every waiter not cancelled gets one,
  // and none is left unclaimed while someone waits (a lost wake-up).
  void testCancelledConditionWaitersPassTheirNotificationOn() {
    const int n = rounds(60);
    for (int round = 0; round < n; ++round) {
      constexpr int kWaiters = 6;
      Mutex mutex;
      ConditionVariable condition;
      int tokens = 0, taken = 0;
      std::string ends[kWaiters];
      TaskHandle waiters[kWaiters];
      std::atomic<int> waiting{0};
      for (int i = 0; i < kWaiters; ++i) {
        EventChannel& channel = i % 2 == 0 ? *channel_ : *other_;
        waiters[i] = channel.spawn([&, i] {
          ends[i] = endOfCall([&] {
            std::unique_lock<Mutex> lock(mutex);
            ++waiting;
            condition.wait(lock, [&] { return tokens > 0; });
            --tokens;
            ++taken;
          });
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return waiting.load() == kWaiters; }));
      Crew crew(2);
      crew.run(round, {[&] { waiters[round % kWaiters].cancel(); }, [&] { waiters[(round + 3) % kWaiters].cancel(); }},
               [&] {
                 for (int i = 0; i < kWaiters; ++i) {
                   std::lock_guard<Mutex> lock(mutex);
                   ++tokens;
                   condition.notifyOne();
                 }
               });
      const std::string where = "round " + std::to_string(round);
      int returned = 0;
      for (int i = 0; i < kWaiters; ++i) {
        CPPUNIT_ASSERT_MESSAGE(where + ": waiter " + std::to_string(i) + " hangs (a lost notification)",
                               eventually([&] { return waiters[i].done(); }));
        waiters[i].join();
        const bool cancelledOne = i == round % kWaiters || i == (round + 3) % kWaiters;
        if (!cancelledOne) CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), ends[i]);
        CPPUNIT_ASSERT_MESSAGE(where + ": " + ends[i], ends[i] == "returned" || ends[i] == "cancelled");
        returned += ends[i] == "returned" ? 1 : 0;
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, returned, taken);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, kWaiters, taken + tokens);
    }
  }

  // Tasks parked in every kind of wait that never ends by itself while
  // threads cancel them and the channel shuts down (even rounds) or is
  // destroyed (odd rounds): every task ends cancelled, exactly once, the
  // shutdown finishes, cancel() after it is false, and a task of another
  // channel they joined runs on undisturbed.
  void testCancelRacingShutdownAndDestruction() {
    const int n = rounds(40);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    Crew crew(2);
    for (int round = 0; round < n; ++round) {
      std::unique_ptr<EventChannel> channel = makeChannel(2);
      Notification never, release;
      Mutex conditionMutex, held;
      ConditionVariable condition;
      held.lock();
      TaskHandle outside = other_->spawn([&release] { release.wait(); });
      const std::vector<std::function<void()>> waits = {
          [] { this_task::sleepFor(1h); },
          [&] { never.wait(); },
          [&] {
            std::unique_lock<Mutex> lock(conditionMutex);
            condition.wait(lock, [] { return false; });
          },
          [&] { std::lock_guard<Mutex> lock(held); },
          [&] {
            char byte;
            pair.server.readSome(&byte, 1);
          },
          [&] { outside.join(); },
          [&] {
            TaskGroup group(this_task::channel());
            group.spawn([] { this_task::sleepFor(1h); });
            group.join();
          },
          [&] {
            this_task::DeadlineScope deadline(1h);
            outside.join();
          },
      };
      constexpr std::size_t kGroupJoin = 6;
      std::vector<std::string> ends(waits.size());
      std::atomic<int> started{0};
      std::vector<TaskHandle> tasks;
      for (std::size_t i = 0; i < waits.size(); ++i) {
        tasks.push_back(channel->spawn([&, i] {
          ++started;
          ends[i] = endOfCall(waits[i]);
          // Unwinding: more waits and spawns must fail at once, not hang.
          if (endOfCall([] { this_task::sleepFor(1h); }) == "returned") ends[i] += ", then slept";
        }));
      }
      CPPUNIT_ASSERT(eventually([&] { return started.load() == static_cast<int>(waits.size()); }));
      if (round % 3 == 0) evchan::test::allWorkersIdle(*channel);
      std::vector<TaskHandle> copies = tasks;
      const auto cancelAll = [&copies] {
        for (TaskHandle& task : copies) task.cancel();
      };
      const auto cancelBackwards = [&copies] {
        for (auto task = copies.rbegin(); task != copies.rend(); ++task) task->cancel();
      };
      {
        evchan::test::Watchdog watchdog("shutdown racing cancel, round " + std::to_string(round));
        crew.run(round, {cancelAll, cancelBackwards}, [&] {
          if (round % 2 == 0) {
            channel->shutdown();
          } else {
            channel.reset();
          }
        });
        channel.reset();
      }
      // What the tasks used goes before anything is asserted.
      const bool outsideEndedEarly = outside.done();
      release.notify();
      const std::string outsideEnd = endOf(outside);
      held.unlock();
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_MESSAGE(where, !outsideEndedEarly);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), outsideEnd);
      for (std::size_t i = 0; i < tasks.size(); ++i) {
        CPPUNIT_ASSERT_MESSAGE(where, tasks[i].done());
        CPPUNIT_ASSERT_MESSAGE(where, !tasks[i].cancel());
        const std::string which = where + ", wait " + std::to_string(i) + ": " + ends[i];
        if (i == kGroupJoin) {
          // The shutdown also ends the member: the join may see it end.
          CPPUNIT_ASSERT_MESSAGE(which, ends[i] == "cancelled" || ends[i] == "returned");
        } else {
          CPPUNIT_ASSERT_EQUAL_MESSAGE(which, std::string("cancelled"), ends[i]);
        }
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf(tasks[i]));
      }
    }
  }

  // The last TaskHandle dropped on one thread while a copy cancels on
  // another (and on a task): the task runs to its end, and an exception it
  // ends with is reported exactly once, a cancellation never.
  void testLastHandleDroppedWhileACopyCancels() {
    struct Tally {
      std::mutex mutex;
      std::multiset<TaskId> reported;
      std::atomic<int> threw{0}, cancelled{0}, ended{0};
    };
    auto tally = std::make_shared<Tally>();
    EventChannel::Options options;
    options.initialThreads = 2;
    options.onUnhandledException = [tally](TaskId id, std::exception_ptr) {
      std::lock_guard<std::mutex> lock(tally->mutex);
      tally->reported.insert(id);
    };
    std::unique_ptr<EventChannel> channel = evchan::test::createOrSkip(options);
    const int n = rounds(600);
    Crew crew(2);
    for (int round = 0; round < n; ++round) {
      TaskHandle task = channel->spawn([tally, round] {
        struct EndWitness {
          Tally& tally;
          ~EndWitness() { ++tally.ended; }
        } witness{*tally};
        if (endOfCall([round] { this_task::sleepFor(std::chrono::microseconds(round % 4 * 5)); }) == "cancelled") {
          ++tally->cancelled;
          throw SystemError(std::make_error_code(std::errc::operation_canceled), "sleep");
        }
        ++tally->threw;
        throw std::runtime_error("task failure");
      });
      auto copy = std::make_shared<TaskHandle>(task);
      EventChannel& helper = *other_;
      crew.run(round,
               {[copy, round, &helper]() mutable {
                  if (round % 2 == 0) {
                    copy->cancel();
                  } else {
                    // From a task of another channel, the thread not waiting.
                    helper.spawn([copy] { copy->cancel(); });
                  }
                  copy.reset();
                },
                [&task] { task = TaskHandle(); }});
    }
    CPPUNIT_ASSERT(eventually([&] { return tally->ended.load() == n; }));
    const auto reports = [&] {
      std::lock_guard<std::mutex> lock(tally->mutex);
      return static_cast<int>(tally->reported.size());
    };
    CPPUNIT_ASSERT(eventually([&] { return reports() == tally->threw.load(); }));
    channel.reset();
    other_.reset();
    CPPUNIT_ASSERT_EQUAL(n, tally->threw.load() + tally->cancelled.load());
    std::lock_guard<std::mutex> lock(tally->mutex);
    CPPUNIT_ASSERT_EQUAL(tally->threw.load(), static_cast<int>(tally->reported.size()));
    for (TaskId id : tally->reported) CPPUNIT_ASSERT_EQUAL(std::size_t(1), tally->reported.count(id));
  }

  // Three threads and two tasks of another channel spawn onto one channel
  // while a canceller cancels what they spawned: every spawned task runs
  // (its function starts), has its own id, and ends once.
  void testSpawnsFromManyThreadsAndTasksCancelled() {
    const int perSpawner = rounds(300);
    constexpr int kThreads = 3, kTasks = 2;
    std::mutex mutex;
    std::vector<TaskHandle> spawned;
    std::atomic<int> started{0};
    std::atomic<bool> spawning{true};
    EventChannel& target = *channel_;
    const auto spawnSome = [&] {
      for (int i = 0; i < perSpawner; ++i) {
        TaskHandle task = target.spawn([&started, i] {
          ++started;
          if (i % 3 != 0) this_task::yield();
          if (i % 3 == 1) this_task::sleepFor(std::chrono::microseconds(i % 7));
        });
        std::lock_guard<std::mutex> lock(mutex);
        spawned.push_back(std::move(task));
      }
    };
    std::thread canceller([&] {
      std::size_t next = 0;
      for (;;) {
        const bool more = spawning.load();
        TaskHandle task;
        {
          std::lock_guard<std::mutex> lock(mutex);
          if (next < spawned.size()) task = spawned[next++];
        }
        if (task.valid()) {
          if (next % 2 == 0) task.cancel();
        } else if (!more) {
          return;
        } else {
          std::this_thread::yield();
        }
      }
    });
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) threads.emplace_back(spawnSome);
    std::vector<TaskHandle> spawners;
    for (int i = 0; i < kTasks; ++i) spawners.push_back(other_->spawn(spawnSome));
    for (std::thread& thread : threads) thread.join();
    for (TaskHandle& spawner : spawners) CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(spawner));
    spawning = false;
    canceller.join();
    const int total = (kThreads + kTasks) * perSpawner;
    CPPUNIT_ASSERT_EQUAL(static_cast<std::size_t>(total), spawned.size());
    std::set<TaskId> ids;
    int cancelled = 0;
    for (TaskHandle& task : spawned) {
      CPPUNIT_ASSERT(ids.insert(task.id()).second);
      const std::string end = endOf(task);
      CPPUNIT_ASSERT_MESSAGE(end, end == "returned" || end == "cancelled");
      cancelled += end == "cancelled" ? 1 : 0;
      CPPUNIT_ASSERT(!task.cancel());
    }
    CPPUNIT_ASSERT_EQUAL(total, started.load());
    CPPUNIT_ASSERT(cancelled <= total / 2 + 1);
  }

  // Pairs of tasks, on the same channel and across two, each sleeping in
  // a loop until cancelled, cancel each other (and themselves) at once
  // while a thread cancels both: no deadlock, both end cancelled.
  void testTasksCancellingEachOther() {
    const int n = rounds(200);
    for (int round = 0; round < n; ++round) {
      EventChannel& second = round % 2 == 0 ? *channel_ : *other_;
      auto handles = std::make_shared<std::vector<TaskHandle>>(2);
      Notification go;
      std::atomic<int> ready{0};
      const auto body = [&go, &ready, handles, round](int self) {
        ++ready;
        go.wait();
        stagger((round + self) % 3);
        if (round % 5 == self) (*handles)[self].cancel();
        (*handles)[1 - self].cancel();
        for (;;) this_task::sleepFor(std::chrono::microseconds(round % 3 + 1));
      };
      (*handles)[0] = channel_->spawn(body, 0);
      (*handles)[1] = second.spawn(body, 1);
      CPPUNIT_ASSERT(eventually([&] { return ready.load() == 2; }));
      TaskHandle first = (*handles)[0], other = (*handles)[1];
      evchan::test::Watchdog watchdog("tasks cancelling each other, round " + std::to_string(round));
      go.notify();
      if (round % 4 == 0) {
        first.cancel();
        other.cancel();
      }
      CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), endOf(first));
      CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), endOf(other));
      handles->clear();
    }
  }

  // A joins B joins C (C on another channel, sleeping a few microseconds),
  // and all three are cancelled at once from three threads: nothing hangs,
  // and each join rethrows what ended the task it joined, so A returning
  // means B and C returned.
  void testJoinChainCancelledEverywhere() {
    const int n = rounds(300);
    Crew crew(3);
    for (int round = 0; round < n; ++round) {
      auto c = std::make_shared<TaskHandle>(
          other_->spawn([round] { this_task::sleepFor(std::chrono::microseconds(round % 4 * 5)); }));
      auto b = std::make_shared<TaskHandle>(channel_->spawn([c] { c->join(); }));
      TaskHandle a = channel_->spawn([b] { b->join(); });
      TaskHandle ca = a, cb = *b, cc = *c;
      std::vector<std::function<void()>> cancels = {[&ca] { ca.cancel(); }, [&cb] { cb.cancel(); },
                                                    [&cc] { cc.cancel(); }};
      std::rotate(cancels.begin(), cancels.begin() + round % 3, cancels.end());
      evchan::test::Watchdog watchdog("join chain, round " + std::to_string(round));
      crew.run(round, cancels);
      const std::string endA = endOf(a), endB = endOf(*b), endC = endOf(*c);
      const std::string where = "round " + std::to_string(round) + ": " + endA + ", " + endB + ", " + endC;
      for (const std::string& end : {endA, endB, endC}) {
        CPPUNIT_ASSERT_MESSAGE(where, end == "returned" || end == "cancelled");
      }
      if (endA == "returned") CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endB);
      if (endB == "returned") CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endC);
    }
  }

  // A TaskGroup with cancelOnFailure whose members fail at about the same
  // time as two threads cancel the group and a task joining it is itself
  // cancelled: every failure is rethrown by a join or reported, exactly
  // once, and every member ends.
  void testTaskGroupCancelRacingFailuresAndJoin() {
    // Every failure thrown is kept in `reports` too, so that none is freed
    // before the test ends (see Reports::keep()).  Should an assertion
    // fail, the group's destructor ends the members, and the channel goes,
    // before `reports` does.
    Reports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    const int n = rounds(200);
    Crew crew(2);
    int failed = 0, rethrown = 0;
    std::atomic<int> failures{0};
    for (int round = 0; round < n; ++round) {
      TaskGroup::Options groupOptions;
      groupOptions.cancelOnFailure = round % 2 == 0;
      auto group = std::make_unique<TaskGroup>(*channel, groupOptions);
      for (int i = 0; i < 4; ++i) {
        group->spawn([&failures, &reports, round, i] {
          this_task::sleepFor(std::chrono::microseconds((round + i) % 4 * 5));
          if ((round + i) % 3 == 0) {
            ++failures;
            const std::exception_ptr failure = std::make_exception_ptr(std::runtime_error("member failure"));
            reports.keep(failure);
            std::rethrow_exception(failure);
          }
        });
      }
      std::string joinEnd;
      TaskHandle joiner = other_->spawn([&] {
        joinEnd = endOfCall([&] { group->join(); });
      });
      TaskHandle copy = joiner;
      crew.run(round, {[&] { group->cancel(); }, [&] { copy.cancel(); }},
               [&] {
                 group->cancel();
                 group->spawn([] { this_task::sleepFor(1h); });  // starts cancelled
               });
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(joiner));
      const std::string where = "round " + std::to_string(round) + ": " + joinEnd;
      CPPUNIT_ASSERT_MESSAGE(where, joinEnd == "returned" || joinEnd == "cancelled" ||
                                        joinEnd == "exception: member failure");
      rethrown += joinEnd == "exception: member failure" ? 1 : 0;
      {
        evchan::test::Watchdog watchdog("TaskGroup destructor, " + where);
        group.reset();  // cancels and waits for what is left
      }
    }
    failed = failures.load();
    channel.reset();
    std::lock_guard<std::mutex> lock(reports.mutex);
    for (const std::string& what : reports.whats) CPPUNIT_ASSERT_EQUAL(std::string("member failure"), what);
    CPPUNIT_ASSERT_EQUAL(failed, rethrown + static_cast<int>(reports.whats.size()));
  }

  // A task alternating shielded and unshielded sleeps, some inside a
  // DeadlineScope that has passed, while two threads and a task cancel it
  // over and over: a shielded sleep always lasts its whole time (neither
  // cancelled nor timed out), and once an unshielded sleep has been
  // cancelled every later one is.
  void testShieldsAndDeadlinesUnderACancelStorm() {
    const int n = rounds(60);
    Crew crew(2);
    for (int round = 0; round < n; ++round) {
      std::string wrong;
      bool cancelledOnce = false;
      std::atomic<bool> running{true};
      TaskHandle task = channel_->spawn([&] {
        for (int i = 0; i < 16 && wrong.empty(); ++i) {
          if (i % 2 == 0) {
            this_task::DeadlineScope deadline(i % 4 == 0 ? -1ms : 1h);
            this_task::CancellationShield shield;
            const Clock::time_point start = Clock::now();
            const std::string end = endOfCall([] { this_task::sleepFor(20us); });
            if (end != "returned") wrong = "shielded sleep " + std::to_string(i) + ": " + end;
            if (Clock::now() - start < 20us) wrong = "shielded sleep " + std::to_string(i) + " cut short";
          } else {
            const std::string end = endOfCall([] { this_task::sleepFor(10us); });
            if (end == "cancelled") {
              cancelledOnce = true;
            } else if (cancelledOnce || end != "returned") {
              wrong = "unshielded sleep " + std::to_string(i) + " after a cancellation: " + end;
            }
          }
        }
        running = false;
      });
      TaskHandle copy = task;
      const auto storm = [&running, copy]() mutable {
        for (int i = 0; i < 20 && running.load(); ++i) {
          copy.cancel();
          std::this_thread::yield();
        }
      };
      crew.run(round, {storm, storm}, [&] {
        if (round % 2 == 0) other_->spawn([copy]() mutable { copy.cancel(); }).join();
      });
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(task));
      CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round), std::string(), wrong);
    }
  }

  // CancellationShield's own example: a cancelled task catches the
  // cancellation, finishes a wait shielded inside the catch block, and
  // rethrows with `throw;`; and a destructor that waits while the
  // exception unwinds the task.  Tasks resume on whichever worker is free,
  // so the catch block (and the unwinding) start on one thread and end on
  // another: the exception being handled, and the count of those
  // propagating, must travel with the task.  Each task sees its own
  // exception in the catch block after the wait, std::uncaught_exceptions()
  // is 1 in the destructor after its wait, the rethrow reaches join(), and
  // a task outside any catch block sees no current exception.
  void testShieldedCleanUpInACatchBlockThenRethrow() {
    struct WaitingDestructor {
      int& uncaught;
      ~WaitingDestructor() {
        this_task::CancellationShield shield;
        this_task::sleepFor(20us);
        uncaught = std::uncaught_exceptions();
      }
    };
    constexpr int kTasks = 8;
    const int n = rounds(40);
    for (int round = 0; round < n; ++round) {
      std::string wrong[kTasks];
      int uncaught[kTasks];
      std::atomic<int> parked{0};
      TaskHandle tasks[kTasks];
      for (int i = 0; i < kTasks; ++i) {
        uncaught[i] = -1;
        tasks[i] = channel_->spawn([&, i] {
          try {
            WaitingDestructor waiting{uncaught[i]};
            ++parked;
            this_task::sleepFor(1h);
          } catch (const SystemError&) {
            const std::exception_ptr mine = std::current_exception();
            {
              this_task::CancellationShield shield;
              this_task::sleepFor(std::chrono::microseconds(10 + i % 3 * 10));
            }
            if (std::current_exception() != mine) {
              wrong[i] = "another exception in the catch block after its wait";
              return;
            }
            throw;
          }
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return parked.load() == kTasks; }));
      for (TaskHandle& task : tasks) task.cancel();
      const std::string where = "round " + std::to_string(round);
      for (int i = 0; i < kTasks; ++i) {
        CPPUNIT_ASSERT_MESSAGE(where + ": " + wrong[i], eventually([&] { return tasks[i].done(); }));
        const std::string end = endOf(tasks[i]);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string(), wrong[i]);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("cancelled"), end);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": std::uncaught_exceptions() in the destructor", 1, uncaught[i]);
      }
      // What the workers' threads have left: no exception current outside
      // a catch block, none propagating.
      std::string left;
      for (int i = 0; i < 4; ++i) {
        channel_->spawn([&left] {
          if (std::current_exception() != nullptr || std::uncaught_exceptions() != 0) left = "exception state left";
        }).join();
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string(), left);
    }
  }

  // A task that sleeps a few microseconds, joined at once by two plain
  // threads and by tasks of two other channels (one with a deadline), while
  // two threads cancel it and one of its task joiners: every join ends,
  // each plain thread's join sees the end join() reports afterwards, and a
  // task joiner not cancelled sees it too.
  void testJoinersOfEveryKindWhileTheJoinedTaskIsCancelled() {
    const int n = rounds(200);
    Crew crew(4);
    for (int round = 0; round < n; ++round) {
      TaskHandle target = channel_->spawn([round] { this_task::sleepFor(std::chrono::microseconds(round % 5 * 5)); });
      std::string threadEnds[2], taskEnds[2];
      TaskHandle joiners[2];
      joiners[0] = other_->spawn([&] { taskEnds[0] = endOf(target); });
      joiners[1] = other_->spawn([&] {
        this_task::DeadlineScope deadline(1h);
        taskEnds[1] = endOf(target);
      });
      TaskHandle first = target, second = target, joinerCopy = joiners[0];
      {
        evchan::test::Watchdog watchdog("joiners of every kind, round " + std::to_string(round));
        crew.run(round, {[&] { threadEnds[0] = endOf(first); }, [&] { first.cancel(); },
                         [&] { threadEnds[1] = endOf(second); }, [&] { joinerCopy.cancel(); }},
                 [&] { second.cancel(); });
        for (TaskHandle& joiner : joiners) CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(joiner));
      }
      const std::string end = endOf(target);
      const std::string where = "round " + std::to_string(round) + ": the task ended " + end;
      CPPUNIT_ASSERT_MESSAGE(where, end == "returned" || end == "cancelled");
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, end, threadEnds[0]);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, end, threadEnds[1]);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, end, taskEnds[1]);
      CPPUNIT_ASSERT_MESSAGE(where + ", cancelled joiner: " + taskEnds[0], taskEnds[0] == end || taskEnds[0] == "cancelled");
    }
  }

  // A channel destroyed from one of its own tasks (the destructor only
  // starts the shutdown there) while two threads cancel its other tasks,
  // parked in a sleep, a join of a task of another channel and a
  // Notification: every task ends cancelled, and cancel() is refused after.
  void testChannelDestroyedFromItsOwnTaskWhileThreadsCancel() {
    const int descriptors = evchan::test::openDescriptorCount();
    const int n = rounds(60);
    Crew crew(2);
    for (int round = 0; round < n; ++round) {
      auto channel = std::make_shared<std::unique_ptr<EventChannel>>(makeChannel(2));
      Notification never, release;
      TaskHandle outside = other_->spawn([&release] { release.wait(); });
      std::string ends[3];
      std::atomic<int> parked{0};
      TaskHandle tasks[3];
      tasks[0] = (*channel)->spawn([&] {
        ++parked;
        ends[0] = endOfCall([] { this_task::sleepFor(1h); });
      });
      tasks[1] = (*channel)->spawn([&] {
        ++parked;
        ends[1] = endOfCall([&] { outside.join(); });
      });
      tasks[2] = (*channel)->spawn([&] {
        ++parked;
        ends[2] = endOfCall([&] { never.wait(); });
      });
      CPPUNIT_ASSERT(eventually([&] { return parked.load() == 3; }));
      TaskHandle destroyer = (*channel)->spawn([channel] { channel->reset(); });
      std::vector<TaskHandle> copies(std::begin(tasks), std::end(tasks));
      const auto cancelAll = [&copies] {
        for (TaskHandle& task : copies) task.cancel();
      };
      crew.run(round, {cancelAll, cancelAll});
      std::string wrong;
      for (TaskHandle& task : tasks) {
        if (!eventually([&] { return task.done(); })) wrong = "a task did not end";
      }
      if (!eventually([&] { return destroyer.done(); })) wrong = "the destroyer did not end";
      release.notify();
      const std::string outsideEnd = endOf(outside);
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string(), wrong);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), outsideEnd);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf(destroyer));
      for (int i = 0; i < 3; ++i) {
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ", task " + std::to_string(i), std::string("cancelled"), ends[i]);
        CPPUNIT_ASSERT_MESSAGE(where, !tasks[i].cancel());
      }
    }
    // The channels' workers free their resources once their last task is
    // gone, on their own time: the fixture's count of descriptors waits.
    CPPUNIT_ASSERT(eventually([&] { return evchan::test::openDescriptorCount() <= descriptors; }));
  }

 private:
  // Runs `makeRound(round)` rounds: the task parks in the round's wait
  // while two threads cancel it (one of them, in odd rounds, through a
  // task of the other channel) and the test's thread runs the round's
  // end.  Checks each end, that a cancelled end had a cancel() accepted,
  // that a shielded sleep right after is neither cancelled nor cut short,
  // and that cancel() is refused once the task has ended.
  void raceWaits(const std::string& name, int count, const std::function<RaceRound(int)>& makeRound) {
    Crew crew(2);
    EventChannel& helper = *other_;
    int counts[3] = {0, 0, 0};
    for (int round = 0; round < count; ++round) {
      const RaceRound r = makeRound(round);
      TaskReport report;
      TaskHandle task = channel_->spawn([&r, &report] {
        report.waitEnd = endOfCall(r.wait);
        shieldedSleep(report);
        this_task::yield();  // throws when a cancel() was recorded
      });
      std::atomic<int> accepted{0};
      TaskHandle first = task, second = task;
      const std::string where = name + ", round " + std::to_string(round);
      {
        evchan::test::Watchdog watchdog(where);
        crew.run(round,
                 {[&] { accepted += first.cancel() ? 1 : 0; },
                  [&] {
                    if (round % 2 == 0) {
                      accepted += second.cancel() ? 1 : 0;
                    } else {
                      helper.spawn([&] { accepted += second.cancel() ? 1 : 0; }).join();
                    }
                  }},
                 r.end);
        const std::string taskEnd = endOf(task);
        CPPUNIT_ASSERT_MESSAGE(where + ": the task ended " + taskEnd, taskEnd == "returned" || taskEnd == "cancelled");
        if (taskEnd == "cancelled") CPPUNIT_ASSERT_MESSAGE(where, accepted.load() >= 1);
      }
      CPPUNIT_ASSERT_MESSAGE(where + ": the wait ended " + report.waitEnd,
                             std::find(r.allowed.begin(), r.allowed.end(), report.waitEnd) != r.allowed.end());
      if (report.waitEnd == "cancelled") CPPUNIT_ASSERT_MESSAGE(where, accepted.load() >= 1);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": the shielded sleep after", std::string("returned"), report.shieldedSleep);
      CPPUNIT_ASSERT_MESSAGE(where + ": the shielded sleep after was cut short", !report.shortSleep);
      CPPUNIT_ASSERT_MESSAGE(where, !task.cancel());
      counts[report.waitEnd == "returned" ? 0 : report.waitEnd == "cancelled" ? 1 : 2]++;
    }
    std::printf("%s: %d returned, %d cancelled, %d timed out of %d\n", name.c_str(), counts[0], counts[1], counts[2],
                count);
  }

  std::unique_ptr<EventChannel> channel_;
  std::unique_ptr<EventChannel> other_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskCancelAdversarialTest);
