// SPDX-License-Identifier: Apache-2.0
// Two reads, or two writes, at once on one ShmStream: each direction is a
// ring with one reader and one writer, so the call that finds another of
// its direction inside fails with Errc::socket_busy, on threads and in
// tasks, in place (readView, writeView) or copying; the call inside goes
// on unharmed, and a read beside a write is still fine.  Before, the two
// raced on the ring's indices (bytes lost or read twice).  Run under ASan
// and TSan.
#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>
#include <evchan/shm_stream.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/shm_pair.h"
#include "support/posix/thread_in_poll.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::Errc;
using evchan::EventChannel;
using evchan::ShmListener;
using evchan::ShmStream;
using evchan::TaskHandle;
using evchan::test::eventually;
using evchan::test::joinWithin;

constexpr evchan::Duration kPatience = 10s;  // a failing test ends, it never hangs
constexpr std::size_t kSmallRing = 4096;

std::string uniqueName(const char* what) { return evchan::test::uniqueShmName("shm-two-callers-test", what); }

struct JoinOnExit {
  explicit JoinOnExit(std::thread& joined) : thread(joined) {}
  ~JoinOnExit() {
    if (thread.joinable()) thread.join();
  }
  std::thread& thread;
};

// A read on its own thread, asleep on an empty ring until the peer writes.
struct SleepingReader {
  explicit SleepingReader(ShmStream& stream)
      : thread([this, &stream] {
          tid = evchan::test::currentThreadId();
          n = stream.readSome(bytes, sizeof bytes, ec);
          done = true;
        }) {}
  ~SleepingReader() {
    if (thread.joinable()) thread.join();
  }

  char bytes[8] = {};
  std::size_t n = 0;
  std::error_code ec;
  std::atomic<pid_t> tid{0};
  std::atomic<bool> done{false};
  std::thread thread;
};

// A stream that wraps another (TlsStream, or a user's) takes the lower
// stream's cancel marks on its own callers' threads: its writer takes the
// mark of its reads while its reader is inside a read.
struct WrappingStream : evchan::Stream {
  static CancelMark markOf(const evchan::Stream& lower, bool writing) { return cancelMarkOf(lower, writing); }
};

// Waits until the thread `tid` (0: not known yet) sleeps in poll(2).
bool asleepInPoll(const std::atomic<pid_t>& tid) {
  return eventually([&] { return tid.load() != 0 && evchan::test::waitsInPoll(tid.load()); });
}

}  // namespace

class ShmTwoCallersTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ShmTwoCallersTest);
  CPPUNIT_TEST(secondReadOnAThreadIsRefusedAndTheFirstGoesOn);
  CPPUNIT_TEST(secondWriteOnAThreadIsRefusedAndTheFirstGoesOn);
  CPPUNIT_TEST(secondReadInATaskIsRefused);
  CPPUNIT_TEST(aWriteBesideASleepingReadIsFine);
  CPPUNIT_TEST(callsOneAfterTheOtherAreFine);
  CPPUNIT_TEST(marksTakenBesideCallsRefuseNothing);
  CPPUNIT_TEST_SUITE_END();

 public:
  void secondReadOnAThreadIsRefusedAndTheFirstGoesOn() {
    ShmListener listener = ShmListener::listen(uniqueName("read"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    SleepingReader first(pair.server);
    CPPUNIT_ASSERT(asleepInPoll(first.tid));  // inside its read (the ring is empty)
    // Each form of read is refused while the first is inside.
    char byte;
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.readSome(&byte, 1, ec));
    ASSERT_ERROR(Errc::socket_busy, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.readExactly(&byte, 1, ec));
    ASSERT_ERROR(Errc::socket_busy, ec);
    const evchan::ConstBuffer view = pair.server.readView(8, ec);
    ASSERT_ERROR(Errc::socket_busy, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, view.size);
    pair.server.consume(0, ec);
    ASSERT_ERROR(Errc::socket_busy, ec);
    CPPUNIT_ASSERT_MESSAGE("the first read ended", !first.done.load());
    // The first read gets every byte the peer writes.
    pair.client.writeAll("abcd", 4);
    CPPUNIT_ASSERT(eventually([&] { return first.done.load(); }));
    first.thread.join();
    ASSERT_NO_ERROR(first.ec);
    CPPUNIT_ASSERT_EQUAL(std::string("abcd"), std::string(first.bytes, first.n));
  }

  void secondWriteOnAThreadIsRefusedAndTheFirstGoesOn() {
    ShmListener listener = ShmListener::listen(uniqueName("write"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    evchan::test::fillRing(pair.client, kPatience);
    std::atomic<pid_t> firstTid{0};
    std::atomic<bool> done{false};
    std::error_code firstEc;
    std::thread first([&] {
      firstTid = evchan::test::currentThreadId();
      pair.client.writeAll("tail", 4, firstEc);
      done = true;
    });
    const JoinOnExit joinFirst(first);  // a failed assertion waits for its timeout
    CPPUNIT_ASSERT(asleepInPoll(firstTid));  // on the full ring
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.writeSome("x", 1, ec));
    ASSERT_ERROR(Errc::socket_busy, ec);
    const evchan::ShmRoom room = pair.client.writeView(8, ec);
    ASSERT_ERROR(Errc::socket_busy, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, room.size);
    pair.client.commit(0, ec);
    ASSERT_ERROR(Errc::socket_busy, ec);
    CPPUNIT_ASSERT_MESSAGE("the first write ended", !done.load());
    // The peer drains the ring: the first write's bytes come last, whole.
    std::string received;
    char chunk[1024];
    while (received.size() < 4 || received.compare(received.size() - 4, 4, "tail") != 0) {
      const std::size_t n = pair.server.readSome(chunk, sizeof chunk, ec);
      if (ec) break;
      received.append(chunk, n);
    }
    ASSERT_NO_ERROR(ec);
    first.join();
    ASSERT_NO_ERROR(firstEc);
    CPPUNIT_ASSERT_EQUAL(std::string::npos, received.find('x'));
  }

  void secondReadInATaskIsRefused() {
    ShmListener listener = ShmListener::listen(uniqueName("task"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannelWithoutMonitor(1);
    std::atomic<bool> firstStarted{false};
    std::error_code firstEc, secondEc;
    char firstBytes[4] = {};
    std::size_t firstN = 0;
    TaskHandle first = channel->spawn([&] {
      firstStarted = true;
      firstN = pair.server.readSome(firstBytes, sizeof firstBytes, firstEc);
    });
    CPPUNIT_ASSERT(eventually([&] { return firstStarted.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // the first task waits in its read
    TaskHandle second = channel->spawn([&] {
      char byte;
      pair.server.readSome(&byte, 1, secondEc);
    });
    joinWithin(second);
    ASSERT_ERROR(Errc::socket_busy, secondEc);
    pair.client.writeAll("abcd", 4);
    joinWithin(first);
    ASSERT_NO_ERROR(firstEc);
    CPPUNIT_ASSERT_EQUAL(std::string("abcd"), std::string(firstBytes, firstN));
  }

  // The two directions are independent: a write is not refused beside a
  // read that sleeps.
  void aWriteBesideASleepingReadIsFine() {
    ShmListener listener = ShmListener::listen(uniqueName("both"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    SleepingReader reader(pair.server);
    CPPUNIT_ASSERT(asleepInPoll(reader.tid));
    pair.server.writeAll("back", 4);
    char back[4];
    pair.client.readExactly(back, sizeof back);
    CPPUNIT_ASSERT_EQUAL(std::string("back"), std::string(back, 4));
    pair.client.writeAll("ok", 2);
    reader.thread.join();
    ASSERT_NO_ERROR(reader.ec);
    CPPUNIT_ASSERT_EQUAL(std::string("ok"), std::string(reader.bytes, reader.n));
  }

  // Reads from two threads one after the other (serialised by the
  // caller) are not refused: only calls inside at the same moment are.
  void callsOneAfterTheOtherAreFine() {
    ShmListener listener = ShmListener::listen(uniqueName("serial"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    pair.client.writeAll("ab", 2);
    char a = 0, b = 0;
    std::thread([&] { pair.server.readExactly(&a, 1); }).join();
    std::thread([&] { pair.server.readExactly(&b, 1); }).join();
    CPPUNIT_ASSERT_EQUAL('a', a);
    CPPUNIT_ASSERT_EQUAL('b', b);
  }

  // Taking a mark is no read and no write: a thread that takes marks of
  // both directions while a reader and a writer stream 4 MiB refuses
  // neither.  Before, the mark pinned its direction's lane, and TlsStream
  // over a ShmStream, a reader and a writer, saw socket_busy (then
  // broken_pipe).
  void marksTakenBesideCallsRefuseNothing() {
    ShmListener listener = ShmListener::listen(uniqueName("marks"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    constexpr std::size_t kTotal = std::size_t{4} << 20;
    std::atomic<bool> stop{false};
    std::atomic<long> marks{0};
    std::thread marker([&] {
      while (!stop.load()) {
        WrappingStream::markOf(pair.server, false);
        WrappingStream::markOf(pair.client, true);
        ++marks;
      }
    });
    const JoinOnExit joinMarker(marker);
    std::error_code writeEc;
    std::thread writer([&] {
      std::vector<char> chunk(1000, 'm');
      for (std::size_t sent = 0; sent < kTotal && !writeEc; sent += chunk.size()) {
        pair.client.writeAll(chunk.data(), std::min(chunk.size(), kTotal - sent), writeEc);
      }
    });
    const JoinOnExit joinWriter(writer);
    std::error_code readEc;
    std::size_t received = 0;
    char buffer[700];
    while (received < kTotal && !readEc) received += pair.server.readSome(buffer, sizeof buffer, readEc);
    stop = true;
    writer.join();
    marker.join();
    ASSERT_NO_ERROR(readEc);
    ASSERT_NO_ERROR(writeEc);
    CPPUNIT_ASSERT_EQUAL(kTotal, received);
    CPPUNIT_ASSERT(marks.load() > 0);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ShmTwoCallersTest);
