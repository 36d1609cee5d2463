// SPDX-License-Identifier: Apache-2.0
// UnixSocket and UnixListener: connect, accept, echo on threads and in
// tasks, names (paths, abstract, too long), the stale-file rule, peer
// credentials, descriptor passing, cancel, timeouts, the channel's events,
// and the stream algorithms (StreamSuite).
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>
#include <evchan/unix_socket.h>

#include "support/cancel_race.h"
#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/stale_socket_file.h"
#include "support/skip.h"
#include "support/stream_feeder.h"
#include "support/stream_suite.h"
#include "support/ticker.h"
#include "support/waiting.h"

using namespace std::chrono_literals;
using evchan::Errc;
using evchan::UnixAcceptEvent;
using evchan::UnixListener;
using evchan::UnixSocket;

namespace {

constexpr evchan::Duration kPatience = 30s;

// A fresh directory for socket files, removed with what is left in it.
class TempDirectory {
 public:
  TempDirectory() {
    std::strcpy(path_, "/tmp/evchan-unix-XXXXXX");
    CPPUNIT_ASSERT(mkdtemp(path_) != nullptr);
  }
  ~TempDirectory() {
    for (const char* name : {"s", "t", "file"}) unlink(file(name).c_str());
    rmdir(path_);
  }
  std::string file(const std::string& name) const { return std::string(path_) + "/" + name; }

 private:
  char path_[32];
};

bool exists(const std::string& path) {
  struct stat status;
  return lstat(path.c_str(), &status) == 0;
}

std::string abstractName(const char* what) {
  static std::atomic<int> counter{0};
  return "@evchan-unix-test-" + std::to_string(getpid()) + "-" + what + "-" + std::to_string(++counter);
}

struct Connected {
  UnixSocket client;
  UnixSocket server;
};

Connected connectPair(UnixListener& listener) {
  Connected pair;
  std::thread connector([&] { pair.client = UnixSocket::connect(listener.name(), kPatience); });
  pair.server = listener.accept();
  connector.join();
  pair.client.setTimeout(kPatience);
  pair.server.setTimeout(kPatience);
  return pair;
}

// Echoes what `socket` reads until the end of the stream.
void echo(UnixSocket& socket) {
  char buffer[4096];
  std::error_code ec;
  for (;;) {
    const std::size_t n = socket.readSome(buffer, sizeof buffer, ec);
    if (ec) break;
    socket.writeAll(buffer, n);
  }
  ASSERT_ERROR(Errc::end_of_stream, ec);
}

// Sends `size` patterned bytes through an echo and checks what comes back.
void roundTrip(UnixSocket& socket, std::size_t size) {
  std::vector<char> out(size), in(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(i * 7 + 3);
  std::thread writer([&] { socket.writeAll(out.data(), out.size()); });
  socket.readExactly(in.data(), in.size());
  writer.join();
  CPPUNIT_ASSERT(out == in);
}

}  // namespace

class UnixSocketTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(UnixSocketTest);
  CPPUNIT_TEST(testEchoOnThreads);
  CPPUNIT_TEST(testEchoInTasks);
  CPPUNIT_TEST(testAbstractName);
  CPPUNIT_TEST(testBadNames);
  CPPUNIT_TEST(testLongestNames);
  CPPUNIT_TEST(testConnectErrors);
  CPPUNIT_TEST(testConnectRetriesWhileTheBacklogIsFull);
  CPPUNIT_TEST(testStalePathReused);
  CPPUNIT_TEST(testLivePathRefused);
  CPPUNIT_TEST(testNonSocketFileKept);
  CPPUNIT_TEST(testCloseRemovesOwnFileOnly);
  CPPUNIT_TEST(testPeerCredentials);
  CPPUNIT_TEST(testPassPipe);
  CPPUNIT_TEST(testPassPipeInTasks);
  CPPUNIT_TEST(testSendDescriptorsWaitsForRoomInTask);
  CPPUNIT_TEST(testBusyDescriptorReceiverLetsTheOtherTasksRun);
  CPPUNIT_TEST(testTooManyDescriptorsClosed);
  CPPUNIT_TEST(testDescriptorArgumentErrors);
  CPPUNIT_TEST(testDescriptorsWithALargeMessage);
  CPPUNIT_TEST(testReceiveDescriptorsAtTheEnd);
  CPPUNIT_TEST(testCancelFromAnotherThread);
  CPPUNIT_TEST(testCloseFromAnotherThread);
  CPPUNIT_TEST(testCancelAndCloseAcceptInTask);
  CPPUNIT_TEST(testCloseEndsReceiveDescriptorsInTask);
  CPPUNIT_TEST(testCancelRacingCompletingReadsOnThread);
  CPPUNIT_TEST(testCancelRacingCompletingReadsInTask);
  CPPUNIT_TEST(testTimeouts);
  CPPUNIT_TEST(testChannelEvents);
  CPPUNIT_TEST(testClosedSocket);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testEchoOnThreads() {
    TempDirectory directory;
    UnixListener listener = UnixListener::listen(directory.file("s"));
    CPPUNIT_ASSERT(exists(directory.file("s")));
    Connected pair = connectPair(listener);
    CPPUNIT_ASSERT_EQUAL(directory.file("s"), pair.client.peerName());
    CPPUNIT_ASSERT_EQUAL(directory.file("s"), pair.server.peerName());
    std::thread echoer([&] { echo(pair.server); });
    roundTrip(pair.client, 1 << 20);
    pair.client.shutdownWrite();
    echoer.join();
  }

  void testEchoInTasks() {
    TempDirectory directory;
    auto channel = evchan::test::makeChannel(2);
    UnixListener listener = UnixListener::listen(directory.file("s"));
    listener.setTimeout(kPatience);
    const std::string name = listener.name();
    constexpr int kClients = 8;
    std::atomic<int> served{0};
    evchan::TaskHandle server = channel->spawn([&] {
      for (int i = 0; i < kClients; ++i) {
        auto socket = std::make_shared<UnixSocket>(listener.accept());
        channel->spawn([&served, socket] {
          echo(*socket);
          ++served;
        });
      }
    });
    std::vector<evchan::TaskHandle> clients;
    std::atomic<int> passed{0};
    for (int c = 0; c < kClients; ++c) {
      clients.push_back(channel->spawn([&, c] {
        UnixSocket socket = UnixSocket::connect(name, kPatience);
        socket.setTimeout(kPatience);
        std::string message(100000 + c, static_cast<char>('a' + c));
        std::string back(message.size(), '\0');
        // Write and read in turns: a task must not block its worker.
        for (std::size_t at = 0; at < message.size(); at += 10000) {
          const std::size_t n = std::min<std::size_t>(10000, message.size() - at);
          socket.writeAll(message.data() + at, n);
          socket.readExactly(&back[at], n);
        }
        if (back == message) ++passed;
        socket.shutdownWrite();
      }));
    }
    for (auto& client : clients) evchan::test::joinWithin(client);
    evchan::test::joinWithin(server);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return served.load() == kClients; }));
    CPPUNIT_ASSERT_EQUAL(kClients, passed.load());
  }

  void testAbstractName() {
#ifndef __linux__
    EVCHAN_SKIP("abstract names are Linux's");
#endif
    const std::string name = abstractName("abstract");
    UnixListener listener = UnixListener::listen(name);
    CPPUNIT_ASSERT_EQUAL(name, listener.name());
    CPPUNIT_ASSERT(!exists(name.substr(1)));
    std::error_code ec;
    UnixListener::listen(name, 16, ec);
    ASSERT_ERROR(std::errc::address_in_use, ec);
    Connected pair = connectPair(listener);
    std::thread echoer([&] { echo(pair.server); });
    roundTrip(pair.client, 70000);
    pair.client.shutdownWrite();
    echoer.join();
    listener.close();
    UnixSocket::connect(name, 1s, ec);
    ASSERT_ERROR(std::errc::connection_refused, ec);
  }

  void testBadNames() {
    std::error_code ec;
    const std::string tooLong = "/tmp/" + std::string(200, 'x');
    UnixListener listener = UnixListener::listen(tooLong, 16, ec);
    ASSERT_ERROR(std::errc::filename_too_long, ec);
    CPPUNIT_ASSERT(!listener.isOpen());
    UnixSocket socket = UnixSocket::connect(tooLong, 1s, ec);
    ASSERT_ERROR(std::errc::filename_too_long, ec);
    CPPUNIT_ASSERT(!socket.isOpen());
    UnixListener::listen("", 16, ec);
    ASSERT_ERROR(Errc::bad_endpoint, ec);
    UnixListener::listen("@", 16, ec);
    ASSERT_ERROR(Errc::bad_endpoint, ec);
    // Its message says what a local socket's name is, not only host:port.
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec.message().find("@name") != std::string::npos);
    UnixSocket::connect(std::string("/tmp/a\0b", 8), 1s, ec);
    ASSERT_ERROR(Errc::bad_endpoint, ec);
    UnixSocket::connect("/tmp/x", -1s, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    UnixListener::listen(abstractName("backlog"), -1, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    UnixListener::listen("/nonexistent-evchan-directory/s", 16, ec);
    ASSERT_ERROR(std::errc::no_such_file_or_directory, ec);
    // The throwing form names the operation and the name.
    try {
      UnixListener::listen(tooLong);
      CPPUNIT_FAIL("listen on a name too long did not throw");
    } catch (const evchan::SystemError& e) {
      CPPUNIT_ASSERT(std::string(e.what()).find("listen") != std::string::npos);
      CPPUNIT_ASSERT(std::string(e.what()).find(tooLong) != std::string::npos);
    }
  }

  // The longest names sockaddr_un takes (107 bytes on Linux: a path and
  // its terminator fill sun_path's 108) work; one byte more is
  // filename_too_long.
  void testLongestNames() {
    const std::size_t longest = sizeof(sockaddr_un::sun_path) - 1;
    TempDirectory directory;
    const std::string prefix = directory.file("");
    CPPUNIT_ASSERT(prefix.size() < longest);
    const std::string path = prefix + std::string(longest - prefix.size(), 'p');
    CPPUNIT_ASSERT_EQUAL(longest, path.size());
    std::error_code ec;
    {
      UnixListener listener = UnixListener::listen(path, 16, ec);
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_EQUAL(path, listener.name());
      Connected pair = connectPair(listener);
      pair.client.writeAll("L", 1);
      char byte = 0;
      pair.server.readExactly(&byte, 1);
      CPPUNIT_ASSERT_EQUAL('L', byte);
      listener.close();
      CPPUNIT_ASSERT(!exists(path));
    }
    UnixListener::listen(path + "q", 16, ec);
    ASSERT_ERROR(std::errc::filename_too_long, ec);
    CPPUNIT_ASSERT(!exists(path + "q") && !exists(path));
    UnixSocket::connect(path + "q", 1s, ec);
    ASSERT_ERROR(std::errc::filename_too_long, ec);
#ifdef __linux__
    std::string abstract = abstractName("longest");
    abstract += std::string(longest - abstract.size(), 'a');
    {
      UnixListener listener = UnixListener::listen(abstract, 16, ec);
      ASSERT_NO_ERROR(ec);
      Connected pair = connectPair(listener);
      CPPUNIT_ASSERT(pair.server.isOpen());
    }
    UnixListener::listen(abstract + "a", 16, ec);
    ASSERT_ERROR(std::errc::filename_too_long, ec);
#endif
  }

  void testConnectErrors() {
    TempDirectory directory;
    std::error_code ec;
    UnixSocket::connect(directory.file("s"), 1s, ec);
    ASSERT_ERROR(std::errc::no_such_file_or_directory, ec);
    evchan::test::leaveStaleSocketFile(directory.file("s"));
    UnixSocket::connect(directory.file("s"), 1s, ec);
    ASSERT_ERROR(std::errc::connection_refused, ec);
  }

  // A listener that accepts nobody, its backlog full: connect() retries
  // until its timeout (then timed_out, having waited), and a connect
  // with time to spare gets in once the listener accepts one.
  void testConnectRetriesWhileTheBacklogIsFull() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath(), 0);
    listener.setTimeout(kPatience);
    std::vector<UnixSocket> queued;
    std::error_code ec;
    evchan::test::Clock::duration waited{};
    for (int i = 0; i < 16 && !ec; ++i) {
      waited = evchan::test::timed([&] { queued.push_back(UnixSocket::connect(listener.name(), 100ms, ec)); });
    }
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited >= 90ms);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited < evchan::test::generous(5s));
    std::error_code late;
    UnixSocket lateSocket;
    std::atomic<bool> connected{false};
    std::thread connector([&] {
      lateSocket = UnixSocket::connect(listener.name(), kPatience, late);
      connected = true;
    });
    std::this_thread::sleep_for(100ms);
    const bool waitedForRoom = !connected.load();
    UnixSocket first = listener.accept();  // room for one more
    connector.join();
    CPPUNIT_ASSERT_MESSAGE("connect() did not wait for room in the backlog", waitedForRoom);
    ASSERT_NO_ERROR(late);
    CPPUNIT_ASSERT(lateSocket.isOpen());
    // The first queued connection is the one accepted: its bytes arrive.
    first.setTimeout(kPatience);
    queued.front().writeAll("q", 1);
    char byte = 0;
    first.readExactly(&byte, 1);
    CPPUNIT_ASSERT_EQUAL('q', byte);
  }

  void testStalePathReused() {
    TempDirectory directory;
    evchan::test::leaveStaleSocketFile(directory.file("s"));
    UnixListener listener = UnixListener::listen(directory.file("s"));
    Connected pair = connectPair(listener);
    pair.client.writeAll("ping", 4);
    char buffer[4];
    pair.server.readExactly(buffer, 4);
    CPPUNIT_ASSERT_EQUAL(std::string("ping"), std::string(buffer, 4));
  }

  void testLivePathRefused() {
    TempDirectory directory;
    UnixListener listener = UnixListener::listen(directory.file("s"));
    std::error_code ec;
    UnixListener second = UnixListener::listen(directory.file("s"), 16, ec);
    ASSERT_ERROR(std::errc::address_in_use, ec);
    CPPUNIT_ASSERT(!second.isOpen());
    // The first still listens, on its own file.
    CPPUNIT_ASSERT(exists(directory.file("s")));
    Connected pair = connectPair(listener);
    CPPUNIT_ASSERT(pair.client.isOpen());
  }

  void testNonSocketFileKept() {
    TempDirectory directory;
    const std::string path = directory.file("file");
    const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CPPUNIT_ASSERT(fd >= 0);
    CPPUNIT_ASSERT_EQUAL(ssize_t{4}, write(fd, "data", 4));
    close(fd);
    std::error_code ec;
    UnixListener listener = UnixListener::listen(path, 16, ec);
    ASSERT_ERROR(std::errc::file_exists, ec);
    struct stat status;
    CPPUNIT_ASSERT_EQUAL(0, lstat(path.c_str(), &status));
    CPPUNIT_ASSERT(S_ISREG(status.st_mode));
    CPPUNIT_ASSERT_EQUAL(off_t{4}, status.st_size);
    // A directory there is no socket either, and stays.
    const std::string dirPath = directory.file("t");
    CPPUNIT_ASSERT_EQUAL(0, mkdir(dirPath.c_str(), 0700));
    UnixListener::listen(dirPath, 16, ec);
    ASSERT_ERROR(std::errc::file_exists, ec);
    CPPUNIT_ASSERT_EQUAL(0, lstat(dirPath.c_str(), &status));
    CPPUNIT_ASSERT(S_ISDIR(status.st_mode));
    CPPUNIT_ASSERT_EQUAL(0, rmdir(dirPath.c_str()));
  }

  void testCloseRemovesOwnFileOnly() {
    TempDirectory directory;
    const std::string path = directory.file("s");
    {
      UnixListener listener = UnixListener::listen(path);
      UnixListener moved = std::move(listener);
      listener.close();  // moved from: nothing to remove
      CPPUNIT_ASSERT(exists(path));
      moved.close();
      CPPUNIT_ASSERT(!exists(path));
    }
    // A file another listener put there since is left alone.
    UnixListener first = UnixListener::listen(path);
    CPPUNIT_ASSERT_EQUAL(0, unlink(path.c_str()));
    UnixListener second = UnixListener::listen(path);
    first.close();
    CPPUNIT_ASSERT(exists(path));
    UnixSocket client = UnixSocket::connect(path, kPatience);
    UnixSocket server = second.accept();
    CPPUNIT_ASSERT(server.isOpen());
    second.close();
    CPPUNIT_ASSERT(!exists(path));
  }

  void testPeerCredentials() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    for (UnixSocket* socket : {&pair.client, &pair.server}) {
      std::error_code ec;
      const evchan::PeerCredentials credentials = socket->peerCredentials(ec);
      if (ec == std::errc::operation_not_supported) EVCHAN_SKIP("no peer credentials on this system");
      ASSERT_NO_ERROR(ec);
#if defined(__linux__)
      CPPUNIT_ASSERT_EQUAL(static_cast<std::int64_t>(getpid()), credentials.pid);
#endif
      CPPUNIT_ASSERT_EQUAL(static_cast<std::uint32_t>(geteuid()), credentials.uid);
      CPPUNIT_ASSERT_EQUAL(static_cast<std::uint32_t>(getegid()), credentials.gid);
    }
    pair.client.close();
    std::error_code ec;
    pair.client.peerCredentials(ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT_THROW(pair.client.peerCredentials(), evchan::SystemError);
  }

  // Passes a pipe's write end; the receiver writes through it.
  static void passPipe(UnixSocket& from, UnixSocket& to) {
    int pipeEnds[2];
    CPPUNIT_ASSERT_EQUAL(0, pipe2(pipeEnds, O_CLOEXEC));
    const char tag[] = "fd!";
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, from.sendDescriptors(tag, 3, &pipeEnds[1], 1));
    close(pipeEnds[1]);  // the receiver gets its own copy
    // Ordinary bytes after it arrive as such.
    from.writeAll("tail", 4);
    char data[16];
    int fds[4] = {-1, -1, -1, -1};
    std::size_t received = 0;
    const std::size_t bytes = to.receiveDescriptors(data, sizeof data, fds, 4, received);
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, bytes);  // never past the message that carried them
    CPPUNIT_ASSERT_EQUAL(std::string("fd!"), std::string(data, 3));
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    CPPUNIT_ASSERT(fds[0] >= 0);
    CPPUNIT_ASSERT((fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0);
    CPPUNIT_ASSERT_EQUAL(ssize_t{5}, write(fds[0], "hello", 5));
    close(fds[0]);
    char piped[8];
    CPPUNIT_ASSERT_EQUAL(ssize_t{5}, read(pipeEnds[0], piped, sizeof piped));
    CPPUNIT_ASSERT_EQUAL(std::string("hello"), std::string(piped, 5));
    CPPUNIT_ASSERT_EQUAL(ssize_t{0}, read(pipeEnds[0], piped, sizeof piped));  // every write end closed
    close(pipeEnds[0]);
    to.readExactly(data, 4);
    CPPUNIT_ASSERT_EQUAL(std::string("tail"), std::string(data, 4));
  }

  void testPassPipe() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    passPipe(pair.client, pair.server);
    passPipe(pair.server, pair.client);
  }

  // The receiver waits first, the sender's task on the same worker must
  // still run: the receive suspends its task (a DescriptorReceiveEvent),
  // so the pool never needs a second thread.
  void testPassPipeInTasks() {
    auto channel = evchan::test::makeChannelWithoutMonitor(1);
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    const std::string name = listener.name();
    UnixSocket accepted;
    evchan::TaskHandle receiver = channel->spawn([&] {
      accepted = listener.accept();
      accepted.setTimeout(kPatience);
      int fd = -1;
      std::size_t received = 0;
      char byte;
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, accepted.receiveDescriptors(&byte, 1, &fd, 1, received));
      CPPUNIT_ASSERT_EQUAL('x', byte);
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
      CPPUNIT_ASSERT((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, write(fd, "ok", 2));
      close(fd);
    });
    int pipeEnds[2];
    CPPUNIT_ASSERT_EQUAL(0, pipe2(pipeEnds, O_CLOEXEC));
    evchan::TaskHandle sender = channel->spawn([&] {
      UnixSocket socket = UnixSocket::connect(name, kPatience);
      evchan::this_task::sleepFor(50ms);
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, socket.sendDescriptors("x", 1, &pipeEnds[1], 1));
    });
    evchan::test::joinWithin(sender);
    evchan::test::joinWithin(receiver);
    close(pipeEnds[1]);
    char piped[4];
    CPPUNIT_ASSERT_EQUAL(ssize_t{2}, read(pipeEnds[0], piped, sizeof piped));
    CPPUNIT_ASSERT_EQUAL(std::string("ok"), std::string(piped, 2));
    close(pipeEnds[0]);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the waiting receive kept its worker", 1, channel->poolStats().peak);
  }

  // A task whose every receiveDescriptors() finds bytes waiting never has
  // to suspend: those calls yield every 64 too, as reads do, so that the
  // other tasks of its one worker (a 1 ms ticker) still run.
  void testBusyDescriptorReceiverLetsTheOtherTasksRun() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    evchan::test::StreamFeeder feeder(pair.client);
    std::atomic<bool> stop{false};
    auto channel = evchan::test::makeChannelWithoutMonitor(1);
    evchan::test::Ticker ticker(*channel);
    std::atomic<int> ticksAtStart{-1};
    std::atomic<long> calls{0};
    std::error_code receiveError;
    evchan::TaskHandle receiver = channel->spawn([&] {
      ticksAtStart = ticker.ticks.load();
      // A byte a call: what the socket buffers lasts the reader a long
      // while, should the feeder get no CPU for it on a loaded machine.
      char byte;
      std::size_t received = 0;
      while (!stop.load() && !receiveError) {
        pair.server.receiveDescriptors(&byte, 1, nullptr, 0, received, receiveError);
        ++calls;
      }
    });
    const bool ticked = evchan::test::ticksBeside(ticker, ticksAtStart, 20, 10s);
    stop = true;
    evchan::test::joinWithin(receiver);
    pair.server.close();  // a write waiting for room fails
    feeder.stop();
    ticker.end();
    ASSERT_NO_ERROR(receiveError);
    CPPUNIT_ASSERT_MESSAGE("the ticker stood still beside a busy receiver (" + std::to_string(calls.load()) +
                               " calls)",
                           ticked);
    CPPUNIT_ASSERT(calls.load() > 64);  // the receiver did not simply wait
  }

  // sendDescriptors() into a full send buffer, in a task: it suspends, and
  // the task that drains the buffer runs on the same worker.
  void testSendDescriptorsWaitsForRoomInTask() {
    auto channel = evchan::test::makeChannelWithoutMonitor(1);
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    pair.client.setTimeout(evchan::Duration::zero());
    std::vector<char> chunk(1 << 16, 'f');
    std::size_t filled = 0;
    std::error_code full;
    while (!full) filled += pair.client.writeSome(chunk.data(), chunk.size(), full);
    ASSERT_ERROR(std::errc::timed_out, full);
    pair.client.setTimeout(kPatience);
    int pipeEnds[2];
    CPPUNIT_ASSERT_EQUAL(0, pipe2(pipeEnds, O_CLOEXEC));
    std::atomic<bool> sent{false};
    evchan::TaskHandle sender = channel->spawn([&] {
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.client.sendDescriptors("d", 1, &pipeEnds[1], 1));
      sent = true;
    });
    evchan::TaskHandle drainer = channel->spawn([&] {
      evchan::this_task::sleepFor(50ms);
      CPPUNIT_ASSERT_MESSAGE("the send waited for room", !sent.load());
      std::vector<char> sink(filled);
      pair.server.readExactly(sink.data(), filled);
      char byte = 0;
      int fd = -1;
      std::size_t received = 0;
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.server.receiveDescriptors(&byte, 1, &fd, 1, received));
      CPPUNIT_ASSERT_EQUAL('d', byte);
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
      close(fd);
    });
    evchan::test::joinWithin(sender);
    evchan::test::joinWithin(drainer);
    close(pipeEnds[0]);
    close(pipeEnds[1]);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the waiting send kept its worker", 1, channel->poolStats().peak);
  }

  void testTooManyDescriptorsClosed() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    int pipeEnds[2];
    CPPUNIT_ASSERT_EQUAL(0, pipe2(pipeEnds, O_CLOEXEC));
    const int three[3] = {pipeEnds[1], pipeEnds[1], pipeEnds[1]};
    pair.client.sendDescriptors("m", 1, three, 3);
    close(pipeEnds[1]);
    int fds[2] = {-1, -1};
    std::size_t received = 9;
    char byte;
    std::error_code ec;
    pair.server.receiveDescriptors(&byte, 1, fds, 2, received, ec);
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
    // Every copy was closed: the pipe's read end sees the end.
    char piped;
    CPPUNIT_ASSERT_EQUAL(ssize_t{0}, read(pipeEnds[0], &piped, 1));
    close(pipeEnds[0]);
  }

  void testDescriptorArgumentErrors() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    const int bad = -1, good = 0;
    std::error_code ec;
    pair.client.sendDescriptors("x", 1, &bad, 1, ec);
    ASSERT_ERROR(std::errc::bad_file_descriptor, ec);
    pair.client.sendDescriptors("x", 0, &good, 1, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    pair.client.sendDescriptors("x", 1, &good, 0, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    std::vector<int> many(UnixSocket::kMaxDescriptors + 1, 0);
    pair.client.sendDescriptors("x", 1, many.data(), many.size(), ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    std::size_t received = 0;
    pair.server.receiveDescriptors(nullptr, 1, nullptr, 0, received, ec);
    ASSERT_ERROR(Errc::null_buffer, ec);
    char spare[4];
    int fds[2];
    pair.server.receiveDescriptors(spare, 0, fds, 2, received, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);  // zero size
    pair.server.receiveDescriptors(spare, sizeof spare, nullptr, 2, received, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);  // null fds, non-zero capacity
    // Nothing went: a plain write and read still line up.
    pair.client.writeAll("z", 1);
    char byte = 0;
    int fd = -1;
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.server.receiveDescriptors(&byte, 1, &fd, 1, received));
    CPPUNIT_ASSERT_EQUAL('z', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
  }

  // Descriptors on the first bytes of a 1 MiB message, far more than the
  // socket buffers: sendDescriptors() sends what fits (at least one byte,
  // with the descriptor), writeAll() the rest; the receiver gets the
  // descriptor with its bytes, never past them, and every byte in order.
  void testDescriptorsWithALargeMessage() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    constexpr std::size_t kSize = 1 << 20;
    std::vector<unsigned char> out(kSize), in(kSize);
    for (std::size_t i = 0; i < kSize; ++i) out[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
    int pipeEnds[2];
    CPPUNIT_ASSERT_EQUAL(0, pipe2(pipeEnds, O_CLOEXEC));
    std::size_t sentWithDescriptor = 0;
    std::error_code sendError;
    std::thread sender([&] {
      sentWithDescriptor = pair.client.sendDescriptors(out.data(), kSize, &pipeEnds[1], 1, sendError);
      if (!sendError) pair.client.writeAll(out.data() + sentWithDescriptor, kSize - sentWithDescriptor, sendError);
    });
    int fd = -1;
    std::size_t received = 0;
    std::size_t first = 0;
    std::error_code ec;
    first = pair.server.receiveDescriptors(in.data(), kSize, &fd, 1, received, ec);
    if (!ec) pair.server.readExactly(in.data() + first, kSize - first, ec);
    sender.join();
    close(pipeEnds[1]);
    ASSERT_NO_ERROR(sendError);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT(sentWithDescriptor >= 1 && sentWithDescriptor <= kSize);
    CPPUNIT_ASSERT(first >= 1 && first <= sentWithDescriptor);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    CPPUNIT_ASSERT(in == out);
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, write(fd, "!", 1));
    close(fd);
    char piped[2];
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, read(pipeEnds[0], piped, sizeof piped));
    CPPUNIT_ASSERT_EQUAL('!', piped[0]);
    close(pipeEnds[0]);
  }

  // The peer gone: receiveDescriptors() is end_of_stream, not a wait or 0
  // bytes without an error.
  void testReceiveDescriptorsAtTheEnd() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    pair.client.writeAll("e", 1);
    pair.client.close();
    char byte = 0;
    int fd = -1;
    std::size_t received = 7;
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL('e', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  // A task waiting in receiveDescriptors() (under blocking()) is ended
  // by close() from this thread; the worker comes back.
  void testCloseEndsReceiveDescriptorsInTask() {
    auto channel = evchan::test::makeChannel(1);
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    std::error_code ec;
    std::atomic<bool> started{false};
    evchan::TaskHandle task = channel->spawn([&] {
      char byte;
      int fd = -1;
      std::size_t received = 0;
      started = true;
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, ec);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load(); }));
    std::this_thread::sleep_for(50ms);
    CPPUNIT_ASSERT(!task.done());
    pair.server.close();
    evchan::test::joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec == std::errc::operation_canceled || ec == Errc::not_open);
    // The channel's worker is free again: a new task runs.
    std::atomic<bool> ran{false};
    evchan::TaskHandle after = channel->spawn([&] { ran = true; });
    evchan::test::joinWithin(after);
    CPPUNIT_ASSERT(ran.load());
  }

  void testCancelFromAnotherThread() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    std::error_code acceptError;
    std::atomic<bool> acceptDone{false};  // acceptError is the acceptor's until then
    std::thread acceptor([&] {
      listener.accept(acceptError);
      acceptDone = true;
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] {
      listener.cancel();
      return acceptDone.load();
    }));
    acceptor.join();
    ASSERT_ERROR(std::errc::operation_canceled, acceptError);
    CPPUNIT_ASSERT(listener.isOpen());

    Connected pair = connectPair(listener);
    std::error_code readError, receiveError;
    std::atomic<bool> done{false};
    std::thread reader([&] {
      char byte;
      pair.server.readSome(&byte, 1, readError);
      std::size_t received = 0;
      int fd;
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, receiveError);
      done = true;
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] {
      pair.server.cancel();
      return done.load();
    }));
    reader.join();
    ASSERT_ERROR(std::errc::operation_canceled, readError);
    ASSERT_ERROR(std::errc::operation_canceled, receiveError);
    // Still open and working.
    pair.client.writeAll("k", 1);
    char byte;
    pair.server.readExactly(&byte, 1);
    CPPUNIT_ASSERT_EQUAL('k', byte);
  }

  void testCloseFromAnotherThread() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    std::error_code readError;
    std::thread reader([&] {
      char byte;
      pair.server.readSome(&byte, 1, readError);
    });
    std::this_thread::sleep_for(50ms);
    pair.server.close();
    reader.join();
    CPPUNIT_ASSERT(readError == std::errc::operation_canceled || readError == Errc::not_open);
    std::error_code ec;
    char byte;
    pair.server.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    pair.client.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  // A task suspended in accept(): cancel() ends it and leaves the listener
  // open; close() from this thread ends the next one.
  void testCancelAndCloseAcceptInTask() {
    auto channel = evchan::test::makeChannel(1);
    TempDirectory directory;
    UnixListener listener = UnixListener::listen(directory.file("s"));
    std::error_code first, second;
    std::atomic<int> phase{0};
    std::atomic<bool> closing{false};
    evchan::TaskHandle task = channel->spawn([&] {
      listener.accept(first);
      phase = 1;
      // The test's thread cancels until it sees phase 1, so a cancel()
      // may also end this accept: only close() ends the loop.
      do listener.accept(second);
      while (second == std::errc::operation_canceled && !closing.load());
      phase = 2;
    });
    // cancel() until the accept ends (it is repeated, since one that
    // lands before the accept waits may be absorbed).
    CPPUNIT_ASSERT(evchan::test::eventually([&] {
      listener.cancel();
      return phase.load() >= 1;
    }));
    ASSERT_ERROR(std::errc::operation_canceled, first);
    CPPUNIT_ASSERT(listener.isOpen());
    std::this_thread::sleep_for(20ms);
    CPPUNIT_ASSERT_EQUAL(1, phase.load());
    closing = true;
    listener.close();
    evchan::test::joinWithin(task);
    CPPUNIT_ASSERT(second == std::errc::operation_canceled || second == Errc::not_open);
    CPPUNIT_ASSERT(!exists(directory.file("s")));
  }

  // One byte a round, written and the reader's wait cancelled at once:
  // each byte arrives once, in order.
  void testCancelRacingCompletingReadsOnThread() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    evchan::test::CancelRace race(2000);
    std::thread reader([&] { race.read(pair.server); });
    race.writeAndCancel(pair.client, pair.server);
    reader.join();
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.received.load());
  }

  void testCancelRacingCompletingReadsInTask() {
    auto channel = evchan::test::makeChannel(1);
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    Connected pair = connectPair(listener);
    evchan::test::CancelRace race(2000);
    evchan::TaskHandle reader = channel->spawn([&] { race.read(pair.server); });
    race.writeAndCancel(pair.client, pair.server);
    evchan::test::joinWithin(reader);
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.received.load());
  }

  void testTimeouts() {
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    listener.setTimeout(50ms);
    std::error_code ec;
    auto started = std::chrono::steady_clock::now();
    listener.accept(ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT(std::chrono::steady_clock::now() - started >= 40ms);
    listener.setTimeout(kPatience);
    Connected pair = connectPair(listener);
    pair.server.setTimeout(50ms);
    char byte;
    auto waited = evchan::test::timed([&] { pair.server.readSome(&byte, 1, ec); });
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited >= 40ms);
    std::size_t received = 0;
    int fd;
    waited = evchan::test::timed([&] { pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, ec); });
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited >= 40ms);
    pair.server.setTimeout(-1ms, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    // In a task too.
    auto channel = evchan::test::makeChannel(1);
    evchan::TaskHandle task = channel->spawn([&] {
      std::error_code inTask;
      char b;
      const auto waitedInTask = evchan::test::timed([&] { pair.server.readSome(&b, 1, inTask); });
      ASSERT_ERROR(std::errc::timed_out, inTask);
      CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waitedInTask), waitedInTask >= 40ms);
    });
    evchan::test::joinWithin(task);
  }

  void testChannelEvents() {
    auto channel = evchan::test::makeChannel(1);
    UnixListener listener = UnixListener::listen(abstractNameOrPath());
    UnixAcceptEvent accept(listener);
    channel->post(accept);
    UnixSocket client = UnixSocket::connect(listener.name(), kPatience);
    CPPUNIT_ASSERT_EQUAL(static_cast<evchan::Event*>(&accept), channel->getEvent(kPatience));
    ASSERT_NO_ERROR(accept.error());
    UnixSocket server = accept.takeSocket();
    CPPUNIT_ASSERT(server.isOpen());
    CPPUNIT_ASSERT_EQUAL(listener.name(), server.peerName());

    char out[] = "event";
    evchan::WriteEvent write(client, out, 5);
    channel->post(write);
    CPPUNIT_ASSERT_EQUAL(static_cast<evchan::Event*>(&write), channel->getEvent(kPatience));
    ASSERT_NO_ERROR(write.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{5}, write.bytesTransferred());
    char in[8];
    evchan::ReadEvent read(server, in, sizeof in);
    std::size_t got = 0;
    while (got < 5) {
      read.setBuffer(in + got, sizeof in - got);
      channel->post(read);
      CPPUNIT_ASSERT_EQUAL(static_cast<evchan::Event*>(&read), channel->getEvent(kPatience));
      ASSERT_NO_ERROR(read.error());
      got += read.bytesTransferred();
    }
    CPPUNIT_ASSERT_EQUAL(std::string("event"), std::string(in, 5));
    CPPUNIT_ASSERT(&read.socket() == &server);
  }

  void testClosedSocket() {
    UnixSocket socket;
    std::error_code ec;
    char byte;
    socket.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    std::size_t received;
    socket.receiveDescriptors(&byte, 1, nullptr, 0, received, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    socket.sendDescriptors(&byte, 1, nullptr, 0, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    UnixListener listener;
    listener.accept(ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT(listener.name().empty());
  }

 private:
  // Abstract where the system has them (no file to clean up), else a
  // path in a fresh directory.
  std::string abstractNameOrPath() {
#ifdef __linux__
    return abstractName("case");
#else
    directories_.emplace_back(std::make_unique<TempDirectory>());
    return directories_.back()->file("s");
#endif
  }
  std::vector<std::unique_ptr<TempDirectory>> directories_;

 public:
  void tearDown() override {
    directories_.clear();
    LeakCheckedFixture::tearDown();
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(UnixSocketTest);

// ------------------------------------------------------------ stream algorithms
// Stream's loops and BufferedReader over UnixSocket (test/support/stream_suite.h).
namespace {

struct UnixStreams {
  static const char* name() { return "UnixSocket"; }
  // A Unix socket buffers a few hundred KiB, far below the suite's
  // multi-MiB transfers: the default buffers already fill.
  static evchan::test::StreamPair makeSmallBuffered() { return make(); }
  static evchan::test::StreamPair make() {
#ifdef __linux__
    UnixListener listener = UnixListener::listen(abstractName("stream-suite"));
#else
    static TempDirectory directory;
    UnixListener listener = UnixListener::listen(directory.file("t"));
#endif
    listener.setTimeout(kPatience);
    Connected pair = connectPair(listener);
    return {std::make_unique<UnixSocket>(std::move(pair.client)),
            std::make_unique<UnixSocket>(std::move(pair.server))};
  }
};

}  // namespace

CPPUNIT_TEST_SUITE_REGISTRATION(evchan::test::StreamSuite<UnixStreams>);
