// SPDX-License-Identifier: Apache-2.0
// ShmStream::cancel() ends the calls under way on the stream, reads and
// writes, and no call that begins after it.  A stream's reads sleep on
// one doorbell socket and its writes on another; one cancel() must still
// count as one moment for both: a caller whose read it ended and who then
// begins a write (the usual request-reply loop) keeps that write.  Run
// under ASan and TSan.
#include <cppunit/extensions/HelperMacros.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <system_error>
#include <thread>

#include <sched.h>
#include <unistd.h>

#include <evchan/evchan.h>
#include <evchan/shm_stream.h>

#include "support/cpu_burners.h"
#include "support/race_scheduling.h"
#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/shm_pair.h"
#include "support/posix/thread_in_poll.h"
#include "support/slowdown.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::EventChannel;
using evchan::ShmListener;
using evchan::ShmStream;
using evchan::TaskHandle;
using evchan::test::describe;
using evchan::test::eventually;
using evchan::test::joinWithin;

constexpr evchan::Duration kPatience = 10s;  // a failing round ends, it never hangs
constexpr std::size_t kSmallRing = 4096;

std::string uniqueName(const char* what) { return evchan::test::uniqueShmName("shm-cancel-test", what); }

// Each round the caller (a thread or a task) reads from `stream`, whose
// incoming ring stays empty, until the test's cancel() ends the read;
// then at once writes one byte into its full outgoing ring.  That write
// began after the cancel() had ended the read, so the cancel() must leave
// it be: it ends when the test's thread, seeing the read ended, reads a
// byte from the peer.  A write ended with operation_canceled is the
// failure.
struct ReadThenWrite {
  explicit ReadThenWrite(int roundCount) : rounds(roundCount) {}

  void run(ShmStream& stream) {
    tid = evchan::test::currentThreadId();
    runRounds(stream);
    ended = true;
  }

  void runRounds(ShmStream& stream) {
    for (int round = 0; round < rounds && !stopped.load(); ++round) {
      char byte;
      std::error_code ec;
      started = round + 1;
      stream.readSome(&byte, 1, ec);
      if (ec != std::errc::operation_canceled) {
        fail("round " + std::to_string(round) + ": the read ended with " + describe(ec));
        return;
      }
      readEnded = round + 1;
      const std::size_t n = stream.writeSome("w", 1, ec);
      if (ec || n != 1) {
        fail("round " + std::to_string(round) + ": the write begun after the cancel() ended with " +
             describe(ec));
        return;
      }
      finished = round + 1;
    }
  }

  // The test's side: `parked` tells when the caller sleeps in its call
  // (or has stopped).
  template <class Parked>
  void cancelEachRead(ShmStream& stream, ShmStream& peer, Parked parked) {
    for (int round = 0; round < rounds && !stopped.load(); ++round) {
      const std::string at = "round " + std::to_string(round) + ": ";
      if (!eventually([&] { return started.load() > round || stopped.load(); })) {
        return fail(at + "the caller did not begin its read");
      }
      if (!parked()) return fail(at + "the read did not sleep");
      if (stopped.load()) return;
      stream.cancel();
      if (!eventually([&] { return readEnded.load() > round || stopped.load(); })) {
        return fail(at + "cancel() did not end the read");
      }
      // Asleep in the write: only then is there room, so that the write
      // had to sleep, where a cancel() would end it.
      if (!parked()) return fail(at + "the write did not sleep");
      if (stopped.load()) return;
      char byte;
      std::error_code ec;
      peer.readSome(&byte, 1, ec);
      if (ec) return fail(at + "the peer's read: " + describe(ec));
      if (!eventually([&] { return finished.load() > round || stopped.load(); })) {
        return fail(at + "the write did not end");
      }
    }
  }

  void fail(const std::string& why) {
    if (!stopped.exchange(true)) wrong = why;
  }

  const int rounds;
  std::atomic<int> started{0};
  std::atomic<int> readEnded{0};
  std::atomic<int> finished{0};
  std::atomic<bool> stopped{false};
  std::atomic<bool> ended{false};
  std::atomic<pid_t> tid{0};
  std::string wrong;  // written once, by the first fail(); read once ended
};

// Cancels until the caller's run() has ended: what a stopped race left
// waiting ends.  False if it did not end within the patience.
bool endCaller(ReadThenWrite& race, ShmStream& stream) {
  race.stopped = true;
  const auto giveUp = std::chrono::steady_clock::now() + evchan::test::generous(kPatience);
  while (!eventually([&] { return race.ended.load(); }, 10ms)) {
    if (std::chrono::steady_clock::now() > giveUp) return false;
    stream.cancel();
  }
  return true;
}

}  // namespace

class ShmCancelTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ShmCancelTest);
  CPPUNIT_TEST(cancelEndsNoWriteATaskBeginsAfterItEndedItsRead);
  CPPUNIT_TEST(cancelEndsNoWriteAThreadBeginsAfterItEndedItsRead);
  CPPUNIT_TEST_SUITE_END();

 public:
  void cancelEndsNoWriteATaskBeginsAfterItEndedItsRead() {
    // On one CPU a thread woken (the caller whose read cancel() ended)
    // often preempts the one that woke it, in the middle of its cancel():
    // the interleaving this test is after.
    const evchan::test::OneCpu pinned;
    const evchan::test::CpuBurners burners(1);
    ShmListener listener = ShmListener::listen(uniqueName("task"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    evchan::test::fillRing(pair.client, kPatience);
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannelWithoutMonitor(1);
    ReadThenWrite race(evchan::test::raceRounds(400, "EVCHAN_CANCEL_RACE_ROUNDS"));
    TaskHandle caller = channel->spawn([&] { race.run(pair.client); });
    race.cancelEachRead(pair.client, pair.server, [&] { return evchan::test::allWorkersIdle(*channel); });
    CPPUNIT_ASSERT_MESSAGE("the caller did not end", endCaller(race, pair.client));
    joinWithin(caller);
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.finished.load());
  }

  void cancelEndsNoWriteAThreadBeginsAfterItEndedItsRead() {
    const evchan::test::OneCpu pinned;  // as above
    const evchan::test::CpuBurners burners(1);
    ShmListener listener = ShmListener::listen(uniqueName("thread"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    evchan::test::fillRing(pair.client, kPatience);
    ReadThenWrite race(evchan::test::raceRounds(400, "EVCHAN_CANCEL_RACE_ROUNDS"));
    std::thread caller([&] { race.run(pair.client); });
    race.cancelEachRead(pair.client, pair.server, [&] {
      return eventually([&] { return race.stopped.load() || evchan::test::waitsInPoll(race.tid.load()); });
    });
    if (!endCaller(race, pair.client)) {
      std::fputs("the caller's thread did not end: it cannot be joined\n", stderr);
      std::abort();
    }
    caller.join();
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.finished.load());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ShmCancelTest);
