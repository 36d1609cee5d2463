// SPDX-License-Identifier: Apache-2.0
// UnixSocket and UnixListener against callers that push on their edges:
// descriptor receives cancelled over and over, or ended by close() from
// another thread mid-transfer, and a descriptor send blocked on a full
// buffer ended by close(), on threads and in tasks (no descriptor lost or
// leaked: the open-descriptor count is checked every round); a
// BufferedReader over a socket whose peer attaches descriptors to its
// lines; listeners moved and replaced on reused paths.  POSIX only
// (AF_UNIX).
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>
#include <evchan/unix_socket.h>

#include "support/descriptor_names.h"
#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/run_where.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::BufferedReader;
using evchan::Errc;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::UnixListener;
using evchan::UnixSocket;
using evchan::test::generous;
using evchan::test::openDescriptorCount;
using evchan::test::runWhere;

const std::error_code kCancelled = std::make_error_code(std::errc::operation_canceled);

// A fresh directory for socket files, removed with what is left in it.
class TempDirectory {
 public:
  TempDirectory() {
    std::strcpy(path_, "/tmp/evchan-unixadv-XXXXXX");
    CPPUNIT_ASSERT(mkdtemp(path_) != nullptr);
  }
  ~TempDirectory() {
    for (const char* name : {"a", "b"}) unlink(file(name).c_str());
    rmdir(path_);
  }
  std::string file(const std::string& name) const { return std::string(path_) + "/" + name; }

 private:
  char path_[40];
};

bool isSocketFile(const std::string& path) {
  struct stat status;
  return lstat(path.c_str(), &status) == 0 && S_ISSOCK(status.st_mode);
}

bool isPipe(int fd) {
  struct stat status;
  return fstat(fd, &status) == 0 && S_ISFIFO(status.st_mode);
}

struct Connected {
  UnixSocket client;
  UnixSocket server;
};

Connected connectPair(UnixListener& listener) {
  Connected pair;
  std::thread connector([&] { pair.client = UnixSocket::connect(listener.name(), generous(10s)); });
  pair.server = listener.accept();
  connector.join();
  pair.client.setTimeout(generous(20s));
  pair.server.setTimeout(generous(20s));
  return pair;
}

// A pipe whose ends close with the object.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { CPPUNIT_ASSERT_EQUAL(0, pipe2(fds, O_CLOEXEC)); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

class UnixAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(UnixAdversarialTest);
  CPPUNIT_TEST(testCancelledDescriptorReceivesLoseNoneOnThread);
  CPPUNIT_TEST(testCancelledDescriptorReceivesLoseNoneInTask);
  CPPUNIT_TEST(testCloseMidTransferLeaksNoDescriptorOnThread);
  CPPUNIT_TEST(testCloseMidTransferLeaksNoDescriptorInTask);
  CPPUNIT_TEST(testCloseEndsABlockedDescriptorSendOnThread);
  CPPUNIT_TEST(testCloseEndsABlockedDescriptorSendInTask);
  CPPUNIT_TEST(testReaderOverLinesCarryingDescriptorsOnThread);
  CPPUNIT_TEST(testReaderOverLinesCarryingDescriptorsInTask);
  CPPUNIT_TEST(testReaderCancelledMidLineLosesNothing);
  CPPUNIT_TEST(testThreadsAndATaskAcceptOnOneListener);
  CPPUNIT_TEST(testListenersMovedAndReplacedOnReusedPaths);
  CPPUNIT_TEST(testNameLengthsAtTheLimitForPathsAndAbstractNames);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testCancelledDescriptorReceivesLoseNoneOnThread() { cancelledReceives(false); }
  void testCancelledDescriptorReceivesLoseNoneInTask() { cancelledReceives(true); }
  void testCloseMidTransferLeaksNoDescriptorOnThread() { closeMidTransfer(false); }
  void testCloseMidTransferLeaksNoDescriptorInTask() { closeMidTransfer(true); }
  void testCloseEndsABlockedDescriptorSendOnThread() { closeBlockedSend(false); }
  void testCloseEndsABlockedDescriptorSendInTask() { closeBlockedSend(true); }
  void testReaderOverLinesCarryingDescriptorsOnThread() { readerOverDescriptors(false); }
  void testReaderOverLinesCarryingDescriptorsInTask() { readerOverDescriptors(true); }

  // A reader's UnixSocket times out and is cancelled in the middle of a
  // line: each failure takes nothing; the line then reads whole.
  void testReaderCancelledMidLineLosesNothing() {
    TempDirectory directory;
    UnixListener listener = UnixListener::listen(directory.file("a"));
    Connected pair = connectPair(listener);
    BufferedReader reader(pair.server, 4);
    pair.client.writeAll("half a ", 7);
    pair.server.setTimeout(30ms);
    std::error_code ec;
    CPPUNIT_ASSERT(reader.readLine(64, ec).empty());
    ASSERT_ERROR(std::errc::timed_out, ec);
    pair.server.setTimeout(generous(20s));
    std::atomic<bool> reading{false};
    std::thread canceller([&] {
      while (!reading.load()) std::this_thread::sleep_for(1ms);
      // Until the reader is seen to end: a cancel() before it waits is missed.
      while (reading.load()) {
        pair.server.cancel();
        std::this_thread::sleep_for(1ms);
      }
    });
    reading = true;
    std::string line = reader.readLine(64, ec);
    reading = false;
    canceller.join();
    ASSERT_ERROR(kCancelled, ec);
    CPPUNIT_ASSERT(line.empty());
    CPPUNIT_ASSERT_EQUAL(std::string("half a "), std::string(reader.buffered()));
    pair.client.writeAll("line\r\n", 6);
    CPPUNIT_ASSERT_EQUAL(std::string("half a line"), reader.readLine(64));
  }

  // Two threads and a task accept on one listener (the header allows
  // several threads; one task per channel) while connections arrive one
  // after another: each is accepted once, by one of them, whose accept
  // never fails; close() then ends all three (operation_canceled or
  // not_open).
  void testThreadsAndATaskAcceptOnOneListener() {
    TempDirectory directory;
    UnixListener listener = UnixListener::listen(directory.file("a"));
    listener.setTimeout(generous(20s));
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    const std::uint32_t count = evchan::test::slowdown() > 1 ? 150 : 600;
    std::mutex lock;
    std::vector<std::uint32_t> ids;
    std::vector<std::string> problems;
    auto acceptLoop = [&](const char* who) {
      for (;;) {
        std::error_code ec;
        UnixSocket connection = listener.accept(ec);
        if (ec) {
          if (ec != kCancelled && ec != Errc::not_open) {
            const std::lock_guard<std::mutex> hold(lock);
            problems.push_back(std::string(who) + ": " + ec.message());
          }
          return;
        }
        std::uint32_t id = 0;
        connection.setTimeout(generous(10s));
        connection.readExactly(&id, sizeof id, ec);
        const std::lock_guard<std::mutex> hold(lock);
        if (ec) {
          problems.push_back(std::string(who) + " read: " + ec.message());
        } else {
          ids.push_back(id);
        }
      }
    };
    std::error_code spawned;
    TaskHandle task = channel->spawn([&] { acceptLoop("task"); }, {}, spawned);
    if (spawned == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
    std::thread first([&] { acceptLoop("thread 1"); });
    std::thread second([&] { acceptLoop("thread 2"); });
    std::string connectFailure;
    for (std::uint32_t i = 0; i < count && connectFailure.empty(); ++i) {
      std::error_code ec;
      UnixSocket client = UnixSocket::connect(listener.name(), generous(10s), ec);
      if (!ec) client.writeAll(&i, sizeof i, ec);
      if (ec) connectFailure = "connect " + std::to_string(i) + ": " + ec.message();
    }
    const bool all = evchan::test::eventually([&] {
      const std::lock_guard<std::mutex> hold(lock);
      return ids.size() + problems.size() >= count;
    });
    listener.close();
    first.join();
    second.join();
    evchan::test::joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(connectFailure, connectFailure.empty());
    CPPUNIT_ASSERT_MESSAGE(problems.empty() ? "" : problems.front(), problems.empty());
    CPPUNIT_ASSERT(all);
    std::sort(ids.begin(), ids.end());
    CPPUNIT_ASSERT_EQUAL(std::size_t{count}, ids.size());
    for (std::uint32_t i = 0; i < count; ++i) CPPUNIT_ASSERT_EQUAL(i, ids[i]);
  }

  // Listeners on two paths, moved into each other: each socket file lives
  // exactly as long as the listener that owns it, wherever that object
  // moved; a path freed by one can be listened on at once by another,
  // and a listener that lost its file to a newer one leaves that alone.
  void testListenersMovedAndReplacedOnReusedPaths() {
    TempDirectory directory;
    const std::string a = directory.file("a"), b = directory.file("b");
    for (int round = 0; round < 20; ++round) {
      UnixListener first = UnixListener::listen(a);
      UnixListener second = UnixListener::listen(b);
      {
        Connected pair = connectPair(first);
        pair.client.writeAll("x", 1);
        char byte;
        pair.server.readExactly(&byte, 1);
      }
      UnixListener moved(std::move(first));
      CPPUNIT_ASSERT(!first.isOpen());
      first.close();  // closing the moved-from object removes nothing
      CPPUNIT_ASSERT(isSocketFile(a));
      CPPUNIT_ASSERT_EQUAL(a, moved.name());
      // Move-assigning closes the target's own listener (and its file b).
      second = std::move(moved);
      CPPUNIT_ASSERT(!isSocketFile(b));
      CPPUNIT_ASSERT(isSocketFile(a));
      CPPUNIT_ASSERT_EQUAL(a, second.name());
      {
        Connected pair = connectPair(second);  // still listening on a
        CPPUNIT_ASSERT(pair.client.isOpen());
      }
      // b is free again at once.
      UnixListener third = UnixListener::listen(b);
      CPPUNIT_ASSERT(isSocketFile(b));
      // a's file replaced under the listener: its close leaves the new one.
      CPPUNIT_ASSERT_EQUAL(0, unlink(a.c_str()));
      UnixListener fourth = UnixListener::listen(a);
      second.close();
      CPPUNIT_ASSERT(isSocketFile(a));
      {
        Connected pair = connectPair(fourth);
        CPPUNIT_ASSERT(pair.server.isOpen());
      }
      std::error_code ec;
      UnixListener::listen(a, 16, ec);
      ASSERT_ERROR(std::errc::address_in_use, ec);
      fourth.close();
      third.close();
      CPPUNIT_ASSERT(!isSocketFile(a));
      CPPUNIT_ASSERT(!isSocketFile(b));
    }
  }

  // The longest names the header allows (107 bytes, a path or "@" and 106)
  // listen, connect and carry data; one byte more is filename_too_long,
  // with no socket file or descriptor left behind.
  void testNameLengthsAtTheLimitForPathsAndAbstractNames() {
    TempDirectory directory;
    const std::string base = directory.file("");
    std::string path = base + std::string(107 - base.size(), 'p');
    CPPUNIT_ASSERT_EQUAL(std::size_t{107}, path.size());
    std::string abstract = "@evchan-" + std::to_string(getpid()) + "-";
    abstract += std::string(107 - abstract.size(), 'q');
    for (const std::string& name : {path, abstract}) {
      {
        UnixListener listener = UnixListener::listen(name);
        Connected pair = connectPair(listener);
        pair.client.writeAll("ok", 2);
        char buffer[2];
        pair.server.readExactly(buffer, 2);
        CPPUNIT_ASSERT_EQUAL(std::string("ok"), std::string(buffer, 2));
      }
      const int before = openDescriptorCount();
      std::error_code ec;
      UnixListener::listen(name + "x", 16, ec);
      ASSERT_ERROR(std::errc::filename_too_long, ec);
      UnixSocket::connect(name + "x", 1s, ec);
      ASSERT_ERROR(std::errc::filename_too_long, ec);
      CPPUNIT_ASSERT_EQUAL(before, openDescriptorCount());
    }
    CPPUNIT_ASSERT(!isSocketFile(path));
    CPPUNIT_ASSERT(!isSocketFile(path + "x"));
  }

 private:
  // A sender passes `count` descriptors, one with each byte, while another
  // thread cancels the receiving socket over and over; the receiver
  // retries each operation_canceled.  Every byte and every descriptor
  // arrives once, in order (one byte a call: a receive never goes past
  // the bytes that carried descriptors), a cancelled call reports none,
  // and nothing is left open.
  static void cancelledReceives(bool inTask) {
    // Counted before anything opens: each socket may add a wake socket of
    // its own for the threads that wait on it, closed with it.
    const int before = openDescriptorCount();
    {
      TempDirectory directory;
      UnixListener listener = UnixListener::listen(directory.file("a"));
      Connected pair = connectPair(listener);
      Pipe pipe;
      cancelledReceivesOn(pair, pipe, inTask);
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE(evchan::test::openDescriptorNames(), before, openDescriptorCount());
  }

  static void cancelledReceivesOn(Connected& pair, Pipe& pipe, bool inTask) {
    const std::uint32_t count = evchan::test::slowdown() > 1 ? 600 : 4000;
    std::atomic<bool> done{false};
    std::atomic<std::uint32_t> cancels{0};
    std::string sendFailure;
    std::thread sender([&] {
      std::mt19937 random(3);
      for (std::uint32_t i = 0; i < count; ++i) {
        // Pauses now and then, so that the receiver waits, and is cancelled waiting.
        if (random() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(random() % 100));
        const char byte = static_cast<char>('a' + i % 26);
        std::error_code ec;
        if (pair.client.sendDescriptors(&byte, 1, &pipe.fds[i % 2], 1, ec) != 1 || ec) {
          sendFailure = "send " + std::to_string(i) + ": " + ec.message();
          return;
        }
      }
    });
    std::thread canceller([&] {
      std::mt19937 random(5);
      while (!done.load()) {
        pair.server.cancel();
        ++cancels;
        std::this_thread::sleep_for(std::chrono::microseconds(random() % 300));
      }
    });
    std::string failure;
    std::uint32_t cancelled = 0;
    runWhere(inTask, [&] {
      for (std::uint32_t i = 0; i < count && failure.empty(); ++i) {
        char byte = 0;
        int fds[2] = {-1, -1};
        std::size_t received = 0;
        std::error_code ec;
        std::size_t n = pair.server.receiveDescriptors(&byte, 1, fds, 2, received, ec);
        while (ec == kCancelled) {
          ++cancelled;
          if (received != 0 || n != 0) failure = "a cancelled receive reported " + std::to_string(received);
          n = pair.server.receiveDescriptors(&byte, 1, fds, 2, received, ec);
        }
        if (ec || n != 1 || byte != static_cast<char>('a' + i % 26) || received != 1) {
          failure = "receive " + std::to_string(i) + ": " + ec.message() + ", " + std::to_string(n) + " bytes, " +
                    std::to_string(received) + " descriptors";
        } else if (!isPipe(fds[0])) {
          failure = "receive " + std::to_string(i) + ": not a pipe";
        }
        for (std::size_t k = 0; k < received && k < 2; ++k) ::close(fds[k]);
      }
    }, 120s);
    done = true;
    canceller.join();
    if (!failure.empty()) pair.server.close();  // the sender may wait for room
    sender.join();
    std::printf("%u descriptors, %u cancels, %u receives cancelled\n", count, cancels.load(), cancelled);
    CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
    CPPUNIT_ASSERT_MESSAGE(sendFailure, sendFailure.empty());
  }

  // Many rounds: descriptors stream from a sender thread to a receiver
  // (thread or task) that closes each one it gets; another thread closes
  // the receiving socket mid-transfer.  The receiver ends with
  // operation_canceled or not_open (never reporting descriptors with an
  // error), the sender with an error once its peer is gone, and after
  // each round the process holds exactly the descriptors it held before.
  static void closeMidTransfer(bool inTask) {
    TempDirectory directory;
    Pipe pipe;
    std::unique_ptr<EventChannel> channel;
    if (inTask) channel = evchan::test::makeChannel(1);
    const int rounds = evchan::test::slowdown() > 1 ? 40 : 150;
    std::mt19937 random(9);
    for (int round = 0; round < rounds; ++round) {
      const int before = openDescriptorCount();
      {
        UnixListener listener = UnixListener::listen(directory.file("a"));
        Connected pair = connectPair(listener);
        std::atomic<std::uint32_t> got{0};
        std::string failure;
        std::mutex failureLock;
        auto fail = [&](const std::string& text) {
          const std::lock_guard<std::mutex> hold(failureLock);
          if (failure.empty()) failure = "round " + std::to_string(round) + ": " + text;
        };
        std::thread sender([&] {
          std::uint8_t batch = 1;
          for (;;) {
            const int fds[3] = {pipe.fds[0], pipe.fds[1], pipe.fds[0]};
            std::error_code ec;
            pair.client.sendDescriptors("abc", 3, fds, batch, ec);
            if (ec) return;  // the peer closed: broken_pipe or connection_reset
            batch = static_cast<std::uint8_t>(batch % 3 + 1);
          }
        });
        auto receive = [&] {
          for (;;) {
            char data[8];
            int fds[4] = {-1, -1, -1, -1};
            std::size_t received = 0;
            std::error_code ec;
            pair.server.receiveDescriptors(data, sizeof data, fds, 4, received, ec);
            for (std::size_t k = 0; k < received && k < 4; ++k) {
              if (!isPipe(fds[k])) fail("received a descriptor that is not a pipe");
              ::close(fds[k]);
            }
            if (ec) {
              if (ec != kCancelled && ec != Errc::not_open) fail("receive: " + ec.message());
              if (received != 0) fail("a failed receive reported " + std::to_string(received) + " descriptors");
              return;
            }
            ++got;
          }
        };
        std::thread receiverThread;
        TaskHandle receiverTask;
        if (inTask) {
          receiverTask = channel->spawn(receive);
        } else {
          receiverThread = std::thread(receive);
        }
        const std::uint32_t wanted = 1 + static_cast<std::uint32_t>(random() % 20);
        const bool flowing = evchan::test::eventually([&] { return got.load() >= wanted; });
        std::thread closer([&] { pair.server.close(); });
        closer.join();
        if (inTask) {
          evchan::test::joinWithin(receiverTask);
        } else {
          receiverThread.join();
        }
        sender.join();
        CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
        CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": only " + std::to_string(got.load()) +
                                   " receives before the close",
                               flowing);
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round) + ": " + evchan::test::openDescriptorNames(),
                                   before, openDescriptorCount());
    }
  }

  // Many rounds: a sender (thread or task) passes descriptors to a peer
  // that never reads, until the send buffer is full and the sender waits
  // for room; another thread closes the sending socket.  The sender ends
  // with operation_canceled or not_open, and once both ends are closed
  // every descriptor still in flight is gone with them: the count is back
  // where it was.
  static void closeBlockedSend(bool inTask) {
    TempDirectory directory;
    Pipe pipe;
    std::unique_ptr<EventChannel> channel;
    if (inTask) channel = evchan::test::makeChannel(1);
    const int rounds = evchan::test::slowdown() > 1 ? 10 : 30;
    for (int round = 0; round < rounds; ++round) {
      const int before = openDescriptorCount();
      {
        UnixListener listener = UnixListener::listen(directory.file("a"));
        Connected pair = connectPair(listener);
        std::atomic<std::uint32_t> sent{0};
        std::error_code end;
        auto send = [&] {
          for (;;) {
            const int fds[2] = {pipe.fds[0], pipe.fds[1]};
            std::error_code ec;
            pair.client.sendDescriptors("xyz", 3, fds, 2, ec);
            if (ec) {
              end = ec;
              return;
            }
            ++sent;
          }
        };
        std::thread senderThread;
        TaskHandle senderTask;
        if (inTask) {
          senderTask = channel->spawn(send);
        } else {
          senderThread = std::thread(send);
        }
        // The buffer holds some hundreds of these; then the sender waits.
        const bool filled = evchan::test::eventually([&] {
          const std::uint32_t now = sent.load();
          std::this_thread::sleep_for(5ms);
          return now > 10 && sent.load() == now;
        });
        std::thread closer([&] { pair.client.close(); });
        closer.join();
        if (inTask) {
          evchan::test::joinWithin(senderTask);
        } else {
          senderThread.join();
        }
        CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": the sender never filled the buffer", filled);
        CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": " + end.message(),
                               end == kCancelled || end == Errc::not_open);
        // What did go arrives whole, with its descriptors.
        char data[3];
        int fds[2] = {-1, -1};
        std::size_t received = 0;
        CPPUNIT_ASSERT_EQUAL(std::size_t{3}, pair.server.receiveDescriptors(data, 3, fds, 2, received));
        CPPUNIT_ASSERT_EQUAL(std::size_t{2}, received);
        CPPUNIT_ASSERT(isPipe(fds[0]) && isPipe(fds[1]));
        ::close(fds[0]);
        ::close(fds[1]);
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round) + ": " + evchan::test::openDescriptorNames(),
                                   before, openDescriptorCount());
    }
  }

  // Lines whose bytes carry descriptors, read by a BufferedReader (a
  // plain read): the lines arrive whole and in order, and the descriptors
  // never reach the process (the count stays where it was).
  static void readerOverDescriptors(bool inTask) {
    const int before = openDescriptorCount();
    {
      TempDirectory directory;
      UnixListener listener = UnixListener::listen(directory.file("a"));
      Connected pair = connectPair(listener);
      Pipe pipe;
      readerOverDescriptorsOn(pair, pipe, inTask);
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE(evchan::test::openDescriptorNames(), before, openDescriptorCount());
  }

  static void readerOverDescriptorsOn(Connected& pair, Pipe& pipe, bool inTask) {
    const int lines = 300;
    std::thread sender([&] {
      for (int i = 0; i < lines; ++i) {
        const std::string line = "line " + std::to_string(i) + (i % 2 ? "\r\n" : "\n");
        const int fds[2] = {pipe.fds[0], pipe.fds[1]};
        // The descriptors ride on the first byte of the line, or on its
        // terminator, or on nothing; the rest follows in plain writes.
        const std::size_t at = static_cast<std::size_t>(i) % line.size();
        if (at > 0) pair.client.writeAll(line.data(), at);
        if (i % 5 == 4) {
          pair.client.writeAll(line.data() + at, line.size() - at);
          continue;
        }
        const std::size_t sent = pair.client.sendDescriptors(line.data() + at, 1, fds, 1 + i % 2);
        pair.client.writeAll(line.data() + at + sent, line.size() - at - sent);
      }
    });
    std::string failure;
    runWhere(inTask, [&] {
      BufferedReader reader(pair.server, 3);
      for (int i = 0; i < lines && failure.empty(); ++i) {
        const std::string line = reader.readLine(64);
        if (line != "line " + std::to_string(i)) failure = "line " + std::to_string(i) + " reads \"" + line + "\"";
      }
    }, 120s);
    sender.join();
    CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(UnixAdversarialTest);

}  // namespace
