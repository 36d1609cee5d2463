// SPDX-License-Identifier: Apache-2.0
// TcpSocket::cancel()/close() and TcpListener::cancel()/close() from another
// thread while a plain thread is blocked in a call on the same object:
// reads, writes on a full socket, accepts; races with completing calls.
#include <cppunit/extensions/HelperMacros.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/cancel_race.h"
#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::Errc;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::test::ConnectedPair;
using evchan::test::connectPair;
using evchan::test::elapsedText;
using evchan::test::generous;
using Clock = evchan::test::Clock;

// No call in these tests may wait longer than this: a cancel() that is
// lost shows as timed_out, not as a hang.
constexpr evchan::Duration kSocketTimeout = 10s;
// A cancelled call ends within this.
constexpr evchan::Duration kPromptly = 3s;

// Calls cancel() until `call` has returned: a cancel() ends only calls that
// have begun, and the other thread may not have begun yet.  Returns how
// long the call took to end after the first cancel().
template <class Result, class Cancel>
Clock::duration cancelUntilDone(std::future<Result>& call, Cancel cancel) {
  std::this_thread::sleep_for(20ms);  // most often the call is waiting by now
  const auto start = Clock::now();
  do {
    cancel();
  } while (call.wait_for(10ms) != std::future_status::ready && Clock::now() - start < generous(kSocketTimeout));
  return Clock::now() - start;
}

// Fills the send buffer of `socket` (its peer does not read): writes until
// a zero-timeout write would block.
void fillSendBuffer(TcpSocket& socket) {
  socket.setTimeout(evchan::Duration::zero());
  std::vector<char> chunk(64 * 1024, 'f');
  std::error_code ec;
  while (!ec) socket.writeSome(chunk.data(), chunk.size(), ec);
  ASSERT_ERROR(std::errc::timed_out, ec);
  socket.setTimeout(kSocketTimeout);
}

// Reads and discards until nothing more arrives within 200 ms.
void drain(TcpSocket& socket) {
  socket.setTimeout(200ms);
  std::vector<char> chunk(64 * 1024);
  std::error_code ec;
  while (!ec) socket.readSome(chunk.data(), chunk.size(), ec);
  socket.setTimeout(kSocketTimeout);
}

class SocketCancelTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(SocketCancelTest);
  CPPUNIT_TEST(cancelEndsABlockedReadAndTheSocketStillWorks);
  CPPUNIT_TEST(cancelEndsEveryBlockedCallOnTheSocket);
  CPPUNIT_TEST(cancelEndsAWriteWaitingOnAFullSocket);
  CPPUNIT_TEST(cancelWithoutWaiterIsHarmless);
  CPPUNIT_TEST(cancelTwiceAndAfterClose);
  CPPUNIT_TEST(closeFromAnotherThreadEndsABlockedRead);
  CPPUNIT_TEST(closedCallNeverReadsAReusedDescriptor);
  CPPUNIT_TEST(cancelRacingCompletingReads);
  CPPUNIT_TEST(closeRacingCompletingReads);
  CPPUNIT_TEST(readerDestroysTheSocketWhileAnotherThreadClosesIt);
  CPPUNIT_TEST(listenerCancelEndsABlockedAccept);
  CPPUNIT_TEST(listenerCancelEndsAcceptWithBackoff);
  CPPUNIT_TEST(listenerCloseEndsBlockedAccepts);
  CPPUNIT_TEST_SUITE_END();

 public:
  void cancelEndsABlockedReadAndTheSocketStillWorks() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    auto read = std::async(std::launch::async, [&] {
      char byte;
      std::error_code ec;
      const std::size_t n = pair.client.readSome(&byte, 1, ec);
      return std::make_pair(n, ec);
    });
    const auto took = cancelUntilDone(read, [&] { pair.client.cancel(); });
    const auto [n, ec] = read.get();
    ASSERT_ERROR(std::errc::operation_canceled, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, n);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(took), took < generous(kPromptly));
    CPPUNIT_ASSERT(pair.client.isOpen());
    // Open, and the next read waits for data as usual.
    std::thread writer([&] {
      std::this_thread::sleep_for(50ms);
      pair.server.writeAll("x", 1);
    });
    char byte = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.client.readSome(&byte, 1));
    writer.join();
    CPPUNIT_ASSERT_EQUAL('x', byte);
  }

  void cancelEndsEveryBlockedCallOnTheSocket() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    fillSendBuffer(pair.client);
    std::atomic<int> started{0};
    auto read = std::async(std::launch::async, [&] {
      char byte;
      std::error_code ec;
      ++started;
      pair.client.readSome(&byte, 1, ec);
      return ec;
    });
    auto write = std::async(std::launch::async, [&] {
      std::error_code ec;
      ++started;
      std::vector<char> more(std::size_t{32} << 20, 'm');  // more than the buffers ever take
      pair.client.writeAll(more.data(), more.size(), ec);
      return ec;
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load() == 2; }));
    // cancel() from a third thread ends both.  Repeated: writeAll() is a
    // loop of writes, and a cancel() that falls between two of them (while
    // the kernel's buffer grows) is not seen by the next.
    std::this_thread::sleep_for(50ms);
    CPPUNIT_ASSERT(evchan::test::eventually([&] {
      std::thread([&] { pair.client.cancel(); }).join();
      return read.wait_for(0s) == std::future_status::ready && write.wait_for(0s) == std::future_status::ready;
    }, kPromptly));
    const std::error_code readError = read.get();
    ASSERT_ERROR(std::errc::operation_canceled, readError);
    const std::error_code writeError = write.get();
    ASSERT_ERROR(std::errc::operation_canceled, writeError);
  }

  void cancelEndsAWriteWaitingOnAFullSocket() {
    ConnectedPair pair = connectPair();
    fillSendBuffer(pair.client);
    auto write = std::async(std::launch::async, [&] {
      // More than the kernel's buffers can ever take, even once they grow.
      std::vector<char> more(std::size_t{32} << 20, 'm');
      std::error_code ec;
      pair.client.writeAll(more.data(), more.size(), ec);
      return ec;
    });
    const auto took = cancelUntilDone(write, [&] { pair.client.cancel(); });
    const std::error_code writeError = write.get();
    ASSERT_ERROR(std::errc::operation_canceled, writeError);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(took), took < generous(kPromptly));
    // Still usable: once the peer reads, writes and reads go through.
    pair.server.setTimeout(kSocketTimeout);
    drain(pair.server);
    pair.client.writeAll("end", 3);
    drain(pair.server);
    pair.server.writeAll("ok", 2);
    char reply[2];
    pair.client.readExactly(reply, 2);
    CPPUNIT_ASSERT_EQUAL(std::string("ok"), std::string(reply, 2));
  }

  void cancelWithoutWaiterIsHarmless() {
    ConnectedPair pair = connectPair();
    pair.client.cancel();
    pair.client.cancel();
    // The next call waits its full timeout: the cancel() had nothing to end.
    pair.client.setTimeout(200ms);
    char byte;
    std::error_code ec;
    const auto took = evchan::test::timed([&] { pair.client.readSome(&byte, 1, ec); });
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(took), took >= 150ms);
    pair.server.writeAll("y", 1);
    pair.client.setTimeout(kSocketTimeout);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.client.readSome(&byte, 1));
    CPPUNIT_ASSERT_EQUAL('y', byte);
  }

  void cancelTwiceAndAfterClose() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    auto read = std::async(std::launch::async, [&] {
      char byte;
      std::error_code ec;
      pair.client.readSome(&byte, 1, ec);
      return ec;
    });
    cancelUntilDone(read, [&] {
      pair.client.cancel();
      pair.client.cancel();
    });
    const std::error_code readError = read.get();
    ASSERT_ERROR(std::errc::operation_canceled, readError);
    pair.client.close();
    pair.client.cancel();  // closed: nothing to do
    pair.client.close();
    CPPUNIT_ASSERT(!pair.client.isOpen());
    TcpSocket never;
    never.cancel();
    char byte;
    std::error_code ec;
    pair.client.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::not_open, ec);
  }

  void closeFromAnotherThreadEndsABlockedRead() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    std::atomic<bool> returned{false};
    auto read = std::async(std::launch::async, [&] {
      char byte;
      std::error_code ec;
      pair.client.readSome(&byte, 1, ec);
      returned = true;
      return ec;
    });
    std::this_thread::sleep_for(50ms);
    const auto took = evchan::test::timed([&] { pair.client.close(); });
    CPPUNIT_ASSERT_MESSAGE(elapsedText(took), took < generous(kPromptly));
    CPPUNIT_ASSERT(!pair.client.isOpen());
    CPPUNIT_ASSERT(read.wait_for(generous(kPromptly)) == std::future_status::ready);
    const std::error_code ec = read.get();
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec),
                           ec == std::errc::operation_canceled || ec == Errc::not_open);
    // The peer sees the connection closed.
    pair.server.setTimeout(kSocketTimeout);
    char byte;
    std::error_code peer;
    pair.server.readSome(&byte, 1, peer);
    ASSERT_ERROR(Errc::end_of_stream, peer);
  }

  // close() from another thread while a read waits, then new connections
  // that may get the closed descriptor's number, with data waiting on
  // them: the cancelled read returns nothing and takes none of that data.
  void closedCallNeverReadsAReusedDescriptor() {
    for (int round = 0; round < 20; ++round) {
      ConnectedPair pair = connectPair();
      pair.client.setTimeout(kSocketTimeout);
      std::atomic<bool> started{false};
      char buffer[64];
      std::memset(buffer, 0, sizeof buffer);
      auto read = std::async(std::launch::async, [&] {
        std::error_code ec;
        started = true;
        const std::size_t n = pair.client.readSome(buffer, sizeof buffer, ec);
        return std::make_pair(n, ec);
      });
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load(); }));
      std::this_thread::sleep_for(5ms);
      pair.client.close();
      std::vector<ConnectedPair> reuse;
      for (int i = 0; i < 8; ++i) {
        reuse.push_back(connectPair());
        reuse.back().server.writeAll("stolen", 6);
        reuse.back().client.writeAll("stolen", 6);
      }
      const auto [n, ec] = read.get();
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, n);
      CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec),
                             ec == std::errc::operation_canceled || ec == Errc::not_open);
      CPPUNIT_ASSERT_EQUAL(std::string(), std::string(buffer));
      // And the new connections' data is all still there.
      for (ConnectedPair& other : reuse) {
        char got[6];
        other.client.setTimeout(kSocketTimeout);
        other.client.readExactly(got, 6);
        CPPUNIT_ASSERT_EQUAL(std::string("stolen"), std::string(got, 6));
      }
    }
  }

  // A reader takes one byte a round while the main thread writes one and
  // cancels at once: every byte arrives exactly once, whether the cancel()
  // ended a wait (the reader reads again) or came too late.
  void cancelRacingCompletingReads() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    evchan::test::CancelRace race(3000);
    std::thread reader([&] { race.read(pair.client); });
    race.writeAndCancel(pair.server, pair.client);
    reader.join();
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.received.load());
  }

  // close() racing a read that is completing: the read returns the byte or
  // fails (cancelled, not_open), never anything else, never a crash.
  // A connection's owner deletes its socket as soon as its read ends, while
  // the thread whose close() ended that read may still be inside close():
  // the destructor's own close() waits for that one to finish.  (Found in
  // review: the second close() returned at once and the destructor freed
  // the state the first was still using.)
  void readerDestroysTheSocketWhileAnotherThreadClosesIt() {
    for (int round = 0; round < 200; ++round) {
      ConnectedPair pair = connectPair();
      auto* socket = new TcpSocket(std::move(pair.server));
      std::atomic<bool> reading{false};
      std::error_code ended;
      std::thread owner([&] {
        reading = true;
        char byte;
        socket->readSome(&byte, 1, ended);
        delete socket;
      });
      while (!reading.load()) std::this_thread::yield();
      socket->close();  // the owner may be deleting it as this returns
      owner.join();
      CPPUNIT_ASSERT_MESSAGE(ended.message(), ended == std::errc::operation_canceled || ended == Errc::not_open);
    }
  }

  void closeRacingCompletingReads() {
    constexpr int kRounds = 500;
    int got = 0;
    for (int round = 0; round < kRounds; ++round) {
      ConnectedPair pair = connectPair();
      pair.client.setTimeout(kSocketTimeout);
      auto read = std::async(std::launch::async, [&] {
        char byte = 0;
        std::error_code ec;
        const std::size_t n = pair.client.readSome(&byte, 1, ec);
        return std::make_pair(n == 1 ? byte : '\0', ec);
      });
      if (round % 3 != 0) std::this_thread::sleep_for(std::chrono::microseconds(round % 50));
      pair.server.writeAll("z", 1);
      pair.client.close();
      const auto [byte, ec] = read.get();
      if (!ec) {
        CPPUNIT_ASSERT_EQUAL('z', byte);
        ++got;
      } else {
        CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec),
                               ec == std::errc::operation_canceled || ec == Errc::not_open);
      }
    }
    CPPUNIT_ASSERT(got <= kRounds);
  }

  void listenerCancelEndsABlockedAccept() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    listener.setTimeout(kSocketTimeout);
    auto accept = std::async(std::launch::async, [&] {
      std::error_code ec;
      TcpSocket socket = listener.accept(ec);
      return std::make_pair(socket.isOpen(), ec);
    });
    const auto took = cancelUntilDone(accept, [&] { listener.cancel(); });
    const auto [open, ec] = accept.get();
    ASSERT_ERROR(std::errc::operation_canceled, ec);
    CPPUNIT_ASSERT(!open);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(took), took < generous(kPromptly));
    // Still listening.
    TcpSocket client = TcpSocket::connect(evchan::Endpoint{"127.0.0.1", listener.port()}, kSocketTimeout);
    TcpSocket server = listener.accept();
    CPPUNIT_ASSERT(server.isOpen());
  }

  void listenerCancelEndsAcceptWithBackoff() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    listener.setTimeout(kSocketTimeout);
    auto accept = std::async(std::launch::async, [&] {
      std::error_code ec;
      listener.acceptWithBackoff(evchan::AcceptBackoff(), ec);
      return ec;
    });
    cancelUntilDone(accept, [&] { listener.cancel(); });
    const std::error_code acceptError = accept.get();
    ASSERT_ERROR(std::errc::operation_canceled, acceptError);
  }

  void listenerCloseEndsBlockedAccepts() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    listener.setTimeout(kSocketTimeout);
    std::atomic<int> started{0};
    std::vector<std::future<std::error_code>> accepts;
    for (int i = 0; i < 3; ++i) {
      accepts.push_back(std::async(std::launch::async, [&] {
        std::error_code ec;
        ++started;
        listener.accept(ec);
        return ec;
      }));
    }
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load() == 3; }));
    std::this_thread::sleep_for(50ms);
    const auto took = evchan::test::timed([&] { listener.close(); });
    CPPUNIT_ASSERT_MESSAGE(elapsedText(took), took < generous(kPromptly));
    for (auto& accept : accepts) {
      CPPUNIT_ASSERT(accept.wait_for(generous(kPromptly)) == std::future_status::ready);
      const std::error_code ec = accept.get();
      CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec),
                             ec == std::errc::operation_canceled || ec == Errc::not_open);
    }
    CPPUNIT_ASSERT(!listener.isOpen());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(SocketCancelTest);

}  // namespace
