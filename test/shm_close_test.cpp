// SPDX-License-Identifier: Apache-2.0
// ShmStream::close() while other threads and tasks are inside calls on the
// same stream: their calls end (operation_canceled, or not_open for one
// that had not begun), promptly, the peer reads the end of the stream, and
// nothing touches the rings close() unmapped.  And shutdownWrite() while
// another thread or task writes: the write ends with broken_pipe, and the
// peer reads nothing after the end of the stream.  Also
// ShmListener::accept() in a task, which TaskHandle::cancel() and the
// channel's shutdown end as they end TcpListener's.  Run under ASan and TSan.
#include <cppunit/extensions/HelperMacros.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evchan/evchan.h>
#include <evchan/shm_stream.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/shm_pair.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::Errc;
using evchan::EventChannel;
using evchan::ShmListener;
using evchan::ShmStream;
using evchan::TaskHandle;
using evchan::test::describe;
using evchan::test::elapsedText;
using evchan::test::generous;
using evchan::test::joinWithin;

constexpr evchan::Duration kPatience = 10s;  // a failing test ends, it never hangs
constexpr std::size_t kSmallRing = 4096;

std::string uniqueName(const char* what) { return evchan::test::uniqueShmName("shm-close-test", what); }

using Pair = evchan::test::ShmPair;

Pair connectPair(ShmListener& listener) { return evchan::test::connectShmPair(listener, kSmallRing, kPatience); }

// How a call that close() ended may fail: cancelled while inside, or
// refused when it began after close() had started.
bool endedByClose(const std::error_code& ec) { return ec == std::errc::operation_canceled || ec == Errc::not_open; }

// A client that connects and goes at once: it ends an accept() that
// nothing else would, so that a test that fails does not hang the suite.
void releaseAccept(const std::string& name) {
  std::error_code ec;
  ShmStream client = ShmStream::connect(name, kPatience, kSmallRing, ec);
}

// A task of a one-worker channel waiting in accept() on `listener`, whose
// timeout is infinite; `ec` gets what accept() returned.
TaskHandle spawnAcceptor(EventChannel& channel, ShmListener& listener, std::error_code& ec) {
  std::atomic<bool> started{false};
  TaskHandle acceptor = channel.spawn([&listener, &ec, &started] {
    started = true;
    ShmStream stream = listener.accept(ec);
  });
  CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load(); }));
  std::this_thread::sleep_for(50ms);  // inside its wait by now
  return acceptor;
}

// The peer of a closed stream reads what was written, then the end.
void checkPeerSeesTheEnd(ShmStream& peer) {
  char byte;
  std::error_code ec;
  peer.readSome(&byte, 1, ec);
  ASSERT_ERROR(Errc::end_of_stream, ec);
}

}  // namespace

class ShmCloseTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ShmCloseTest);
  CPPUNIT_TEST(closeEndsAReadWaitingOnAThread);
  CPPUNIT_TEST(closeEndsAWriteWaitingOnAFullRing);
  CPPUNIT_TEST(closeEndsReadAndWriteAtOnce);
  CPPUNIT_TEST(closeWakesThePeerWhileAForkedChildHoldsTheDescriptors);
  CPPUNIT_TEST(closeFromATaskEndsAReadInATaskOnTheSameWorker);
  CPPUNIT_TEST(callsAfterCloseFromAnotherThreadAreRefused);
  CPPUNIT_TEST(closeRacingCompletingReads);
  CPPUNIT_TEST(readerDestroysTheStreamWhileAnotherThreadClosesIt);
  CPPUNIT_TEST(cancelAndTimeoutRacingClose);
  CPPUNIT_TEST(shutdownWriteEndsAWriteWaitingOnAFullRing);
  CPPUNIT_TEST(shutdownWriteEndsAWriteWaitingInATask);
  CPPUNIT_TEST(shutdownWriteRacingWritesLeavesNothingAfterTheEnd);
  CPPUNIT_TEST(taskCancelEndsAnAcceptInATask);
  CPPUNIT_TEST(taskCancelledBeforeAcceptEndsItAtOnce);
  CPPUNIT_TEST(shutdownEndsAnAcceptInATask);
  CPPUNIT_TEST_SUITE_END();

 public:
  void closeEndsAReadWaitingOnAThread() {
    ShmListener listener = ShmListener::listen(uniqueName("read"));
    Pair pair = connectPair(listener);
    std::atomic<bool> done{false};
    std::error_code ec;
    std::thread reader([&] {
      char byte;
      pair.server.readSome(&byte, 1, ec);
      done = true;
    });
    std::this_thread::sleep_for(20ms);  // asleep on the doorbell by now
    const auto elapsed = evchan::test::timed([&] {
      pair.server.close();
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return done.load(); }));
    });
    reader.join();
    CPPUNIT_ASSERT_MESSAGE(describe(ec), endedByClose(ec));
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(3s));
    CPPUNIT_ASSERT(!pair.server.isOpen());
    checkPeerSeesTheEnd(pair.client);
  }

  void closeEndsAWriteWaitingOnAFullRing() {
    ShmListener listener = ShmListener::listen(uniqueName("write"));
    Pair pair = connectPair(listener);
    const std::vector<char> ringful(kSmallRing, 'w');
    pair.client.writeAll(ringful.data(), ringful.size());
    std::error_code ec;
    std::thread writer([&] { pair.client.writeSome("x", 1, ec); });
    std::this_thread::sleep_for(20ms);
    pair.client.close();
    writer.join();
    CPPUNIT_ASSERT_MESSAGE(describe(ec), endedByClose(ec));
    // The peer still gets the ringful written before the close, then the end.
    std::vector<char> got(kSmallRing);
    pair.server.readExactly(got.data(), got.size());
    CPPUNIT_ASSERT(got == ringful);
    checkPeerSeesTheEnd(pair.server);
  }

  void closeEndsReadAndWriteAtOnce() {
    ShmListener listener = ShmListener::listen(uniqueName("both"));
    Pair pair = connectPair(listener);
    const std::vector<char> ringful(kSmallRing, 'b');
    pair.server.writeAll(ringful.data(), ringful.size());
    std::error_code readError, writeError;
    std::thread reader([&] {
      char byte;
      pair.server.readSome(&byte, 1, readError);
    });
    std::thread writer([&] { pair.server.writeSome("x", 1, writeError); });
    std::this_thread::sleep_for(20ms);
    pair.server.close();
    reader.join();
    writer.join();
    CPPUNIT_ASSERT_MESSAGE(describe(readError), endedByClose(readError));
    CPPUNIT_ASSERT_MESSAGE(describe(writeError), endedByClose(writeError));
  }

  // The peer's calls asleep on the bells end at a close(), though a child
  // forked meanwhile (a pre-forked worker, say) holds copies of every
  // descriptor, so that the bells never read end of file: the close rings
  // them.  Before, both calls slept until their timeout.
  void closeWakesThePeerWhileAForkedChildHoldsTheDescriptors() {
    ShmListener listener = ShmListener::listen(uniqueName("forked"));
    Pair pair = connectPair(listener);
    const std::vector<char> ringful(kSmallRing, 'f');
    pair.client.writeAll(ringful.data(), ringful.size());  // the server does not read it
    const pid_t child = fork();  // before the threads: a failed fork leaves none behind
    if (child == 0) {
      pause();  // holds the descriptors until killed
      _exit(0);
    }
    CPPUNIT_ASSERT(child > 0);
    std::error_code readError, writeError;
    std::atomic<int> ended{0};
    std::thread reader([&] {
      char byte;
      pair.client.readSome(&byte, 1, readError);
      ++ended;
    });
    std::thread writer([&] {
      pair.client.writeSome("x", 1, writeError);
      ++ended;
    });
    std::this_thread::sleep_for(20ms);  // both asleep by now
    pair.server.close();
    const bool endedInTime = evchan::test::eventually([&] { return ended.load() == 2; }, generous(3s));
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    reader.join();  // the child is gone: each call ends by now, if not before
    writer.join();
    CPPUNIT_ASSERT_MESSAGE("the peer's calls slept on after the close", endedInTime);
    ASSERT_ERROR(Errc::end_of_stream, readError);
    ASSERT_ERROR(std::errc::broken_pipe, writeError);
  }

  // One worker: the closing task must let the reader task leave its call
  // (by yielding), or the two would wait for each other forever.
  void closeFromATaskEndsAReadInATaskOnTheSameWorker() {
    ShmListener listener = ShmListener::listen(uniqueName("task"));
    Pair pair = connectPair(listener);
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannelWithoutMonitor(1);
    std::atomic<bool> readerIn{false};
    std::error_code ec;
    TaskHandle reader = channel->spawn([&] {
      readerIn = true;
      char byte;
      pair.server.readSome(&byte, 1, ec);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return readerIn.load(); }));
    TaskHandle closer = channel->spawn([&] {
      evchan::this_task::sleepFor(20ms);  // the reader sleeps on its doorbell
      pair.server.close();
    });
    joinWithin(closer);
    joinWithin(reader);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), endedByClose(ec));
    checkPeerSeesTheEnd(pair.client);
  }

  void callsAfterCloseFromAnotherThreadAreRefused() {
    ShmListener listener = ShmListener::listen(uniqueName("after"));
    Pair pair = connectPair(listener);
    std::thread([&] { pair.server.close(); }).join();
    std::error_code ec;
    char byte;
    pair.server.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    pair.server.writeSome("x", 1, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    pair.server.shutdownWrite(ec);
    ASSERT_ERROR(Errc::not_open, ec);
    pair.server.setTimeout(1s, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    pair.server.cancel();
    pair.server.close();
    CPPUNIT_ASSERT(!pair.server.isOpen());
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.ringSize());
    CPPUNIT_ASSERT(pair.server.timeout() == evchan::kInfiniteTimeout);
    CPPUNIT_ASSERT(pair.server.peerName().empty());
  }

  // close() racing a read that is completing: the read returns the byte or
  // ends as close() ends calls, never anything else, never a crash.
  void closeRacingCompletingReads() {
    ShmListener listener = ShmListener::listen(uniqueName("race"));
    constexpr int kRounds = 300;
    int got = 0;
    for (int round = 0; round < kRounds; ++round) {
      Pair pair = connectPair(listener);
      char byte = 0;
      std::error_code ec;
      std::thread reader([&] { pair.client.readSome(&byte, 1, ec); });
      if (round % 3 != 0) std::this_thread::sleep_for(std::chrono::microseconds(round % 50));
      pair.server.writeAll("z", 1);
      pair.client.close();
      reader.join();
      if (!ec) {
        CPPUNIT_ASSERT_EQUAL('z', byte);
        ++got;
      } else {
        CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": " + describe(ec), endedByClose(ec));
      }
    }
    CPPUNIT_ASSERT(got <= kRounds);
  }

  // A connection's owner deletes its stream as soon as its read ends, while
  // the thread whose close() ended that read may still be inside close():
  // the destructor's own close() must wait for that one to finish.
  void readerDestroysTheStreamWhileAnotherThreadClosesIt() {
    ShmListener listener = ShmListener::listen(uniqueName("owner"));
    for (int round = 0; round < 200; ++round) {
      Pair pair = connectPair(listener);
      auto* stream = new ShmStream(std::move(pair.server));
      std::atomic<bool> reading{false};
      std::error_code ended;
      std::thread owner([&] {
        reading = true;
        char byte;
        stream->readSome(&byte, 1, ended);
        delete stream;
      });
      while (!reading.load()) std::this_thread::yield();
      stream->close();  // the owner may be deleting it as this returns
      owner.join();
      CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": " + describe(ended), endedByClose(ended));
    }
  }

  // cancel(), setTimeout() and the getters from other threads while close()
  // runs: each sees the stream open or closed, never half.
  void cancelAndTimeoutRacingClose() {
    ShmListener listener = ShmListener::listen(uniqueName("others"));
    for (int round = 0; round < 100; ++round) {
      Pair pair = connectPair(listener);
      std::atomic<bool> go{false};
      std::atomic<bool> halfClosed{false};
      std::error_code readError;
      std::thread reader([&] {
        char byte;
        while (!go.load()) std::this_thread::yield();
        pair.server.readSome(&byte, 1, readError);
      });
      std::thread meddler([&] {
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < 50; ++i) {
          std::error_code ec;
          pair.server.setTimeout(kPatience, ec);
          const std::size_t ring = pair.server.ringSize();
          if ((ec && ec != Errc::not_open) || (ring != kSmallRing && ring != 0)) halfClosed = true;
          (void)pair.server.timeout();
          (void)pair.server.peerName();
          if (i % 10 == 0) pair.server.cancel();
        }
      });
      go = true;
      std::this_thread::sleep_for(std::chrono::microseconds(round * 10));
      pair.server.close();
      meddler.join();
      reader.join();
      CPPUNIT_ASSERT(!halfClosed.load());
      CPPUNIT_ASSERT_MESSAGE(describe(readError), endedByClose(readError));
    }
  }

  // shutdownWrite() ends a write of the same stream asleep on a full ring
  // with broken_pipe, as a TCP socket's shutdown does, instead of leaving
  // it asleep until the peer reads or its timeout; the peer reads what
  // was written before, then the end.
  void shutdownWriteEndsAWriteWaitingOnAFullRing() {
    ShmListener listener = ShmListener::listen(uniqueName("shut-thread"));
    Pair pair = connectPair(listener);
    const std::vector<char> ringful(kSmallRing, 's');
    pair.client.writeAll(ringful.data(), ringful.size());
    std::atomic<bool> done{false};
    std::error_code ec;
    std::thread writer([&] {
      pair.client.writeSome("x", 1, ec);
      done = true;
    });
    std::this_thread::sleep_for(20ms);  // asleep on the doorbell by now
    bool ended = false;
    const auto elapsed = evchan::test::timed([&] {
      pair.client.shutdownWrite();
      ended = evchan::test::eventually([&] { return done.load(); }, 3s);
    });
    writer.join();  // at the latest when its timeout (kPatience) ends it
    CPPUNIT_ASSERT_MESSAGE(describe(ec) + " after " + elapsedText(elapsed), ended);
    ASSERT_ERROR(std::errc::broken_pipe, ec);
    checkPeerReadsThenTheEnd(pair.server, ringful);
  }

  // The same with the write in a task, its wait in the channel.
  void shutdownWriteEndsAWriteWaitingInATask() {
    ShmListener listener = ShmListener::listen(uniqueName("shut-task"));
    Pair pair = connectPair(listener);
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    const std::vector<char> ringful(kSmallRing, 't');
    pair.client.writeAll(ringful.data(), ringful.size());
    std::atomic<bool> writerIn{false}, done{false};
    std::error_code ec;
    TaskHandle writer = channel->spawn([&] {
      writerIn = true;
      pair.client.writeSome("x", 1, ec);
      done = true;
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return writerIn.load(); }));
    std::this_thread::sleep_for(20ms);  // asleep on the doorbell by now
    pair.client.shutdownWrite();
    const bool ended = evchan::test::eventually([&] { return done.load(); }, 3s);
    joinWithin(writer);  // at the latest when its timeout (kPatience) ends it
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ended);
    ASSERT_ERROR(std::errc::broken_pipe, ec);
    checkPeerReadsThenTheEnd(pair.server, ringful);
  }

  // A thread writes one byte at a time (by copy, or in place through
  // writeView() and commit(), alternately by round) while another calls
  // shutdownWrite() at a varying moment and the peer reads all along.
  // The peer reads every byte the writer was told went out, then the end
  // of the stream, and nothing after it.  Before the write side held a
  // gate against shutdownWrite(), a write that had passed its check could
  // publish its byte after the end: the peer read end_of_stream, then the
  // byte (TSan: about 1 round in 4).
  void shutdownWriteRacingWritesLeavesNothingAfterTheEnd() {
    ShmListener listener = ShmListener::listen(uniqueName("shut-race"));
    const int rounds = evchan::test::raceRounds(200, "EVCHAN_SHM_SHUTDOWN_ROUNDS");
    for (int round = 0; round < rounds; ++round) {
      Pair pair = connectPair(listener);
      std::atomic<bool> go{false};
      std::size_t wrote = 0, readBeforeTheEnd = 0;
      std::error_code writeError, readError;
      std::thread writer([&] {
        while (!go.load()) std::this_thread::yield();
        const char byte = 'r';
        for (;;) {
          if (round % 2 == 0) {
            pair.client.writeSome(&byte, 1, writeError);
          } else {
            const evchan::ShmRoom room = pair.client.writeView(1, writeError);
            if (!writeError) {
              *static_cast<char*>(room.data) = byte;
              pair.client.commit(1, writeError);
            }
          }
          if (writeError) break;
          ++wrote;
        }
      });
      std::thread reader([&] {
        char buffer[256];
        while (!readError) readBeforeTheEnd += pair.server.readSome(buffer, sizeof buffer, readError);
      });
      go = true;
      for (int i = 0; i < round % 50; ++i) std::this_thread::yield();
      pair.client.shutdownWrite();
      writer.join();
      reader.join();
      ASSERT_ERROR(std::errc::broken_pipe, writeError);
      ASSERT_ERROR(Errc::end_of_stream, readError);
      CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round), wrote, readBeforeTheEnd);
      checkPeerSeesTheEnd(pair.server);  // and nothing after it
    }
  }

  // TaskHandle::cancel() ends a task's accept() that would wait forever,
  // with operation_canceled, as it ends TcpListener::accept()'s.
  void taskCancelEndsAnAcceptInATask() {
    ShmListener listener = ShmListener::listen(uniqueName("accept-cancel"));
    const std::string name = listener.name();
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::error_code ec;
    TaskHandle acceptor = spawnAcceptor(*channel, listener, ec);
    bool ended = false;
    const auto elapsed = evchan::test::timed([&] {
      acceptor.cancel();
      ended = evchan::test::eventually([&] { return acceptor.done(); }, 3s);
    });
    if (!ended) releaseAccept(name);
    joinWithin(acceptor);
    CPPUNIT_ASSERT_MESSAGE("accept() still waited " + elapsedText(elapsed) + " after cancel()", ended);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(1s));
    ASSERT_ERROR(std::errc::operation_canceled, ec);
  }

  // A cancel() that came before the task's accept() began ends it at once.
  void taskCancelledBeforeAcceptEndsItAtOnce() {
    ShmListener listener = ShmListener::listen(uniqueName("accept-cancelled"));
    const std::string name = listener.name();
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::atomic<bool> started{false};
    std::atomic<bool> cancelled{false};
    std::error_code ec;
    TaskHandle acceptor = channel->spawn([&] {
      started = true;
      while (!cancelled.load()) std::this_thread::yield();
      ShmStream stream = listener.accept(ec);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load(); }));
    acceptor.cancel();
    cancelled = true;
    const bool ended = evchan::test::eventually([&] { return acceptor.done(); }, 3s);
    if (!ended) releaseAccept(name);
    joinWithin(acceptor);
    CPPUNIT_ASSERT(ended);
    ASSERT_ERROR(std::errc::operation_canceled, ec);
  }

  // shutdown() returns promptly with a task waiting in accept(), which
  // ends with operation_canceled, as TcpListener::accept() does.
  void shutdownEndsAnAcceptInATask() {
    ShmListener listener = ShmListener::listen(uniqueName("accept-shutdown"));
    const std::string name = listener.name();
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::error_code ec;
    TaskHandle acceptor = spawnAcceptor(*channel, listener, ec);
    bool returned = false;
    const auto elapsed = evchan::test::timed([&] {
      returned = evchan::test::finishesWithin(3s, [&] { channel->shutdown(); }, [&] { releaseAccept(name); });
    });
    CPPUNIT_ASSERT_MESSAGE("shutdown() returned only once a client came, after " + elapsedText(elapsed), returned);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(1s));
    CPPUNIT_ASSERT(acceptor.done());
    ASSERT_ERROR(std::errc::operation_canceled, ec);
  }

 private:
  static void checkPeerReadsThenTheEnd(ShmStream& peer, const std::vector<char>& written) {
    std::vector<char> got(written.size());
    peer.readExactly(got.data(), got.size());
    CPPUNIT_ASSERT(got == written);
    checkPeerSeesTheEnd(peer);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ShmCloseTest);
