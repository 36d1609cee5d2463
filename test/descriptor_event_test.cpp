// SPDX-License-Identifier: Apache-2.0
// Tests of DescriptorSendEvent and DescriptorReceiveEvent on every
// backend: descriptors and their bytes come back with the event (working,
// close-on-exec), a send waits for room, too many descriptors are all
// closed, the end of the stream and a close are reported once, and post()
// refuses bad input.
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/descriptor_events.h>
#include <evchan/evchan.h>
#include <evchan/unix_socket.h>

#include "support/backend_fixture.h"
#include "support/default_sigpipe.h"
#include "support/diagnostics.h"
#include "support/named_suite.h"
#include "support/reclaim_on_exit.h"
#include "support/skip.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Backend;
using evchan::DescriptorReceiveEvent;
using evchan::DescriptorSendEvent;
using evchan::Duration;
using evchan::Errc;
using evchan::Event;
using evchan::EventChannel;
using evchan::UnixListener;
using evchan::UnixSocket;
using evchan::test::ReclaimOnExit;

constexpr Duration kPatience = 10s;
const std::error_code kCancelled = std::make_error_code(std::errc::operation_canceled);

Event& nextEvent(EventChannel& channel, Duration patience = kPatience) {
  Event* event = channel.getEvent(patience);
  CPPUNIT_ASSERT_MESSAGE("no event came back in time", event != nullptr);
  return *event;
}

struct Connected {
  UnixSocket client;
  UnixSocket server;
};

// A connected pair through a listener on a fresh path (removed when the
// listener closes, at the end).
Connected connectPair() {
  static std::atomic<int> counter{0};
  UnixListener listener = UnixListener::listen("/tmp/evchan-descriptor-event-" + std::to_string(getpid()) + "-" +
                                               std::to_string(++counter));
  Connected pair;
  std::thread connector([&] { pair.client = UnixSocket::connect(listener.name(), kPatience); });
  pair.server = listener.accept();
  connector.join();
  pair.client.setTimeout(kPatience);
  pair.server.setTimeout(kPatience);
  return pair;
}

// A pipe whose ends close with the object.
struct Pipe {
  int ends[2] = {-1, -1};
  Pipe() { CPPUNIT_ASSERT_EQUAL(0, pipe2(ends, O_CLOEXEC)); }
  ~Pipe() {
    closeRead();
    closeWrite();
  }
  void closeRead() {
    if (ends[0] >= 0) close(ends[0]);
    ends[0] = -1;
  }
  void closeWrite() {
    if (ends[1] >= 0) close(ends[1]);
    ends[1] = -1;
  }
};

// Writes `text` through `fd` (a received pipe write end) and checks that it
// comes out of `pipe`, which proves `fd` is a working copy of its end.
void assertCarries(int fd, Pipe& pipe, const std::string& text) {
  CPPUNIT_ASSERT_EQUAL(static_cast<ssize_t>(text.size()), write(fd, text.data(), text.size()));
  std::string out(text.size(), '\0');
  CPPUNIT_ASSERT_EQUAL(static_cast<ssize_t>(text.size()), read(pipe.ends[0], &out[0], out.size()));
  CPPUNIT_ASSERT_EQUAL(text, out);
}

bool closeOnExec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

// Fills the socket's send buffer (and the peer's receive buffer); returns
// how many bytes went.
std::size_t fillSendBuffer(UnixSocket& socket) {
  socket.setTimeout(Duration::zero());
  std::vector<char> chunk(1 << 16, 'f');
  std::size_t total = 0;
  std::error_code ec;
  for (;;) {
    const std::size_t n = socket.writeSome(chunk.data(), chunk.size(), ec);
    if (ec) break;
    total += n;
  }
  ASSERT_ERROR(std::errc::timed_out, ec);
  socket.setTimeout(kPatience);
  return total;
}

// The highest descriptor open in this process.
int highestOpenDescriptor() {
  int highest = -1;
  for (int fd = 0; fd < 4096; ++fd)
    if (fcntl(fd, F_GETFD) >= 0) highest = fd;
  return highest;
}

// While it lives the process can open `room` more descriptors: every free
// number below the highest open one is taken (by copies of the highest), and the
// soft RLIMIT_NOFILE ends `room` past it.
struct LimitDescriptors {
  rlimit saved{};
  std::vector<int> fillers;
  explicit LimitDescriptors(int room) {
    const int highest = highestOpenDescriptor();
    for (int fd = 0; fd < highest; ++fd) {
      if (fcntl(fd, F_GETFD) >= 0) continue;
      const int filler = fcntl(highest, F_DUPFD_CLOEXEC, fd);
      CPPUNIT_ASSERT_EQUAL(fd, filler);
      fillers.push_back(filler);
    }
    CPPUNIT_ASSERT_EQUAL(0, getrlimit(RLIMIT_NOFILE, &saved));
    rlimit lowered = saved;
    lowered.rlim_cur = static_cast<rlim_t>(highest + 1 + room);
    CPPUNIT_ASSERT_EQUAL(0, setrlimit(RLIMIT_NOFILE, &lowered));
  }
  ~LimitDescriptors() {
    setrlimit(RLIMIT_NOFILE, &saved);
    for (int fd : fillers) close(fd);
  }
};

template <Backend B>
class DescriptorEventTest : public evchan::test::BackendChannelFixture<B> {
  EVCHAN_TEST_SUITE_NAMED(DescriptorEventTest, suiteName());
  CPPUNIT_TEST(testReceiveEventGetsBytesAndWorkingDescriptors);
  CPPUNIT_TEST(testSendEventPassesDescriptors);
  CPPUNIT_TEST(testBytesWithoutDescriptors);
  CPPUNIT_TEST(testSendWaitsForRoom);
  CPPUNIT_TEST(testMoreDescriptorsThanCapacityAreAllClosed);
  CPPUNIT_TEST(testMostDescriptorsInOneMessage);
  CPPUNIT_TEST(testEndOfStream);
  CPPUNIT_TEST(testClosingTheSocketCancelsAPendingReceive);
  CPPUNIT_TEST(testCancelledReceiveLeavesTheDescriptorsQueued);
  CPPUNIT_TEST(testPostRefusesBadInput);
  CPPUNIT_TEST(testManyRoundsByCallbacks);
  CPPUNIT_TEST(testCancelRacingArrivalsLosesNoDescriptor);
  CPPUNIT_TEST(testCloseRacingArrivalLeaksNothing);
  CPPUNIT_TEST(testShutdownRacingArrivalLeaksNothing);
  CPPUNIT_TEST(testDestroyedChannelLeavesReceivedDescriptorsWithTheEvent);
  CPPUNIT_TEST(testCloseCancelsAWaitingSend);
  CPPUNIT_TEST(testReadEventDropsPassedDescriptors);
  CPPUNIT_TEST(testReceiveAndWriteShareTheSocket);
  CPPUNIT_TEST(testSendSlotSharedWithWrites);
  CPPUNIT_TEST(testNoRoomForDescriptorsIsMessageSize);
  CPPUNIT_TEST(testNoDescriptorSlotsLeftIsMessageSize);
  CPPUNIT_TEST(testSendToAClosedPeerFailsWithoutSigpipe);
  CPPUNIT_TEST(testSendsPostedFromTwoThreads);
  CPPUNIT_TEST(testShutdownEndsReceiveInTask);
  CPPUNIT_TEST(testTasksPassDescriptorsBothWays);
  CPPUNIT_TEST(testCancelsHammeringCallbackReceives);
  CPPUNIT_TEST(testSmallestTaskStackWaits);
  CPPUNIT_TEST(testReceiveInTaskTimesOutAndLeavesDescriptorQueued);
  CPPUNIT_TEST(testTaskCancelEndsReceiveInTask);
  CPPUNIT_TEST(testDeadlineScopeEndsReceiveInTask);
  CPPUNIT_TEST(testCancelRacingReceivesInTask);
  CPPUNIT_TEST_SUITE_END();

 public:
  using evchan::test::BackendChannelFixture<B>::channel_;

  static std::string suiteName() { return std::string("DescriptorEventTest<") + evchan::backendName(B) + ">"; }

  void testReceiveEventGetsBytesAndWorkingDescriptors() {
    Connected pair = connectPair();
    Pipe pipe;
    char bytes[8] = {};
    int fds[4] = {-1, -1, -1, -1};
    DescriptorReceiveEvent receive(pair.server, bytes, sizeof bytes, fds, 4);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);  // nothing queued yet: it waits
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    const int two[2] = {pipe.ends[1], pipe.ends[1]};
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, pair.client.sendDescriptors("tag", 3, two, 2));
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, receive.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(std::string("tag"), std::string(bytes, 3));
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, receive.descriptorsReceived());
    for (int i = 0; i < 2; ++i) {
      CPPUNIT_ASSERT(fds[i] >= 0 && fds[i] != pipe.ends[1]);
      CPPUNIT_ASSERT_MESSAGE("received descriptors are close-on-exec", closeOnExec(fds[i]));
      assertCarries(fds[i], pipe, "copy" + std::to_string(i));
      close(fds[i]);
    }
    CPPUNIT_ASSERT_EQUAL(-1, fds[2]);
  }

  void testSendEventPassesDescriptors() {
    Connected pair = connectPair();
    Pipe pipe;
    const int three[3] = {pipe.ends[1], pipe.ends[1], pipe.ends[1]};
    DescriptorSendEvent send(pair.client, "hello", 5, three, 3);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(send);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &send);
    ASSERT_NO_ERROR(send.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{5}, send.bytesTransferred());
    char bytes[8];
    int fds[3] = {-1, -1, -1};
    std::size_t received = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t{5}, pair.server.receiveDescriptors(bytes, sizeof bytes, fds, 3, received));
    CPPUNIT_ASSERT_EQUAL(std::string("hello"), std::string(bytes, 5));
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, received);
    for (int fd : fds) {
      assertCarries(fd, pipe, "x");
      close(fd);
    }
  }

  // Plain bytes through a DescriptorReceiveEvent: no descriptors, and the
  // event may take them with no room for any.
  void testBytesWithoutDescriptors() {
    Connected pair = connectPair();
    pair.client.writeAll("plain", 5);
    char bytes[16];
    DescriptorReceiveEvent receive(pair.server, bytes, sizeof bytes, nullptr, 0);
    ReclaimOnExit reclaim(*channel_);
    std::size_t got = 0;
    while (got < 5) {
      receive.set(bytes + got, sizeof bytes - got, nullptr, 0);
      channel_->post(receive);
      CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
      ASSERT_NO_ERROR(receive.error());
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
      got += receive.bytesTransferred();
    }
    CPPUNIT_ASSERT_EQUAL(std::string("plain"), std::string(bytes, 5));
  }

  void testSendWaitsForRoom() {
    Connected pair = connectPair();
    const std::size_t filled = fillSendBuffer(pair.client);
    Pipe pipe;
    DescriptorSendEvent send(pair.client, "D", 1, &pipe.ends[1], 1);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(send);
    CPPUNIT_ASSERT_MESSAGE("a send into a full buffer waits", channel_->getEvent(50ms) == nullptr);
    // Drain the filler on a thread; the send completes once there is room,
    // and the descriptor arrives after the filler's bytes.
    std::vector<char> sink(filled);
    pair.server.readExactly(sink.data(), filled);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &send);
    ASSERT_NO_ERROR(send.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, send.bytesTransferred());
    char byte = 0;
    int fd = -1;
    std::size_t received = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.server.receiveDescriptors(&byte, 1, &fd, 1, received));
    CPPUNIT_ASSERT_EQUAL('D', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    assertCarries(fd, pipe, "room");
    close(fd);
  }

  void testMoreDescriptorsThanCapacityAreAllClosed() {
    Connected pair = connectPair();
    Pipe pipe;
    const int three[3] = {pipe.ends[1], pipe.ends[1], pipe.ends[1]};
    pair.client.sendDescriptors("m", 1, three, 3);
    pipe.closeWrite();
    char byte = 0;
    int fds[2] = {-1, -1};
    DescriptorReceiveEvent receive(pair.server, &byte, 1, fds, 2);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(std::errc::message_size, receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, receive.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL('m', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
    // Every copy of the write end is closed: the pipe reads its end.
    char out;
    CPPUNIT_ASSERT_EQUAL(ssize_t{0}, read(pipe.ends[0], &out, 1));
  }

  // The most descriptors one message carries, through both events.
  void testMostDescriptorsInOneMessage() {
    Connected pair = connectPair();
    Pipe pipe;
    std::vector<int> out(UnixSocket::kMaxDescriptors, pipe.ends[1]);
    DescriptorSendEvent send(pair.client, "M", 1, out.data(), out.size());
    std::vector<int> in(UnixSocket::kMaxDescriptors, -1);
    char byte = 0;
    DescriptorReceiveEvent receive(pair.server, &byte, 1, in.data(), in.size());
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    channel_->post(send);
    std::vector<Event*> done{&nextEvent(*channel_), &nextEvent(*channel_)};
    CPPUNIT_ASSERT(done[0] != done[1]);
    ASSERT_NO_ERROR(send.error());
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(UnixSocket::kMaxDescriptors, receive.descriptorsReceived());
    assertCarries(in.front(), pipe, "first");
    assertCarries(in.back(), pipe, "last");
    for (int fd : in) close(fd);
  }

  void testEndOfStream() {
    Connected pair = connectPair();
    char byte;
    int fd = -1;
    DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    pair.client.close();
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(Errc::end_of_stream, receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
  }

  void testClosingTheSocketCancelsAPendingReceive() {
    Connected pair = connectPair();
    char byte;
    int fd = -1;
    DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    pair.server.close();
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(kCancelled, receive.error());
    CPPUNIT_ASSERT(channel_->getEvent(50ms) == nullptr);  // handed back once
    CPPUNIT_ASSERT(!receive.inFlight());
  }

  // A receive cancelled before anything came takes nothing: the next one
  // gets the bytes and their descriptor.
  void testCancelledReceiveLeavesTheDescriptorsQueued() {
    Connected pair = connectPair();
    char byte = 0;
    int fd = -1;
    DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    CPPUNIT_ASSERT(channel_->cancel(receive));
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(kCancelled, receive.error());
    Pipe pipe;
    pair.client.sendDescriptors("q", 1, &pipe.ends[1], 1);
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL('q', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, receive.descriptorsReceived());
    assertCarries(fd, pipe, "again");
    close(fd);
  }

  void testPostRefusesBadInput() {
    Connected pair = connectPair();
    Pipe pipe;
    char byte = 'b';
    int fds[2] = {pipe.ends[1], -1};
    std::vector<int> tooMany(UnixSocket::kMaxDescriptors + 1, pipe.ends[1]);
    UnixSocket closed;
    auto refused = [&](Event& event) {
      std::error_code ec;
      channel_->post(event, ec);
      CPPUNIT_ASSERT(!event.inFlight());
      return ec;
    };
    DescriptorSendEvent onClosed(closed, &byte, 1, fds, 1);
    ASSERT_ERROR(Errc::not_open, refused(onClosed));
    DescriptorSendEvent nullData(pair.client, nullptr, 1, fds, 1);
    ASSERT_ERROR(std::errc::invalid_argument, refused(nullData));
    DescriptorSendEvent zeroSize(pair.client, &byte, 0, fds, 1);
    ASSERT_ERROR(std::errc::invalid_argument, refused(zeroSize));
    DescriptorSendEvent none(pair.client, &byte, 1, fds, 0);
    ASSERT_ERROR(std::errc::invalid_argument, refused(none));
    DescriptorSendEvent nullFds(pair.client, &byte, 1, nullptr, 1);
    ASSERT_ERROR(std::errc::invalid_argument, refused(nullFds));
    DescriptorSendEvent over(pair.client, &byte, 1, tooMany.data(), tooMany.size());
    ASSERT_ERROR(std::errc::invalid_argument, refused(over));
    DescriptorSendEvent negative(pair.client, &byte, 1, fds, 2);
    ASSERT_ERROR(std::errc::bad_file_descriptor, refused(negative));

    int in[1];
    DescriptorReceiveEvent closedReceive(closed, &byte, 1, in, 1);
    ASSERT_ERROR(Errc::not_open, refused(closedReceive));
    DescriptorReceiveEvent nullBuffer(pair.server, nullptr, 1, in, 1);
    ASSERT_ERROR(Errc::null_buffer, refused(nullBuffer));
    DescriptorReceiveEvent zero(pair.server, &byte, 0, in, 1);
    ASSERT_ERROR(std::errc::invalid_argument, refused(zero));
    DescriptorReceiveEvent nullIn(pair.server, &byte, 1, nullptr, 1);
    ASSERT_ERROR(std::errc::invalid_argument, refused(nullIn));

    // The read slot is one per socket: a pending ReadEvent keeps it.
    ReclaimOnExit reclaim(*channel_);
    evchan::ReadEvent read(pair.server, &byte, 1);
    channel_->post(read);
    DescriptorReceiveEvent second(pair.server, &byte, 1, in, 1);
    ASSERT_ERROR(Errc::socket_busy, refused(second));
    pair.client.writeAll("r", 1);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &read);
    ASSERT_NO_ERROR(read.error());
  }

  // Round after round from callbacks on the channel's worker: each
  // completion re-posts the event, and every descriptor arrives.
  void testManyRoundsByCallbacks() {
    constexpr int kRounds = 300;
    Connected pair = connectPair();
    Pipe pipe;
    char byte = 0;
    int fd = -1;
    std::atomic<int> received{0}, failures{0};
    DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
    receive.setCallback([&](Event& event) {
      auto& done = static_cast<DescriptorReceiveEvent&>(event);
      if (done.error() || done.descriptorsReceived() != 1 || byte != static_cast<char>('a' + received % 26)) {
        ++failures;
      }
      if (done.descriptorsReceived() == 1) close(fd);
      if (++received < kRounds && !done.error()) channel_->post(done);
    });
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    for (int i = 0; i < kRounds; ++i) {
      const char tag = static_cast<char>('a' + i % 26);
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.client.sendDescriptors(&tag, 1, &pipe.ends[1], 1));
    }
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return received.load() == kRounds; }));
    CPPUNIT_ASSERT_EQUAL(0, failures.load());
  }


  // cancel() racing the arrival of a descriptor, round after round, in
  // both orders: each round's descriptor arrives exactly once (with a
  // completed receive, or with the next one after a cancelled one), and a
  // cancelled receive holds none.
  void testCancelRacingArrivalsLosesNoDescriptor() {
    constexpr int kRounds = 300;
    Connected pair = connectPair();
    Pipe pipe;
    char byte = 0;
    int fd = -1;
    DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
    ReclaimOnExit reclaim(*channel_);
    int cancelled = 0;
    for (int round = 0; round < kRounds; ++round) {
      const char tag = static_cast<char>('a' + round % 26);
      fd = -1;
      channel_->post(receive);
      if (round % 2 == 0) {
        pair.client.sendDescriptors(&tag, 1, &pipe.ends[1], 1);
        channel_->cancel(receive);
      } else {
        channel_->cancel(receive);
        pair.client.sendDescriptors(&tag, 1, &pipe.ends[1], 1);
      }
      for (;;) {
        CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
        if (receive.error() == kCancelled) {
          CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
          CPPUNIT_ASSERT_EQUAL(-1, fd);
          ++cancelled;
          channel_->post(receive);
          continue;
        }
        ASSERT_NO_ERROR(receive.error());
        CPPUNIT_ASSERT_EQUAL(tag, byte);
        CPPUNIT_ASSERT_EQUAL(std::size_t{1}, receive.descriptorsReceived());
        CPPUNIT_ASSERT(fd >= 0);
        close(fd);
        break;
      }
    }
    CPPUNIT_ASSERT(cancelled > 0);
  }

  // close() racing the arrival of a descriptor: the receive either got it
  // (and it is ours to close) or was cancelled; either way nothing stays
  // open once the peer is closed too.
  void testCloseRacingArrivalLeaksNothing() {
    Pipe pipe;
    for (int round = 0; round < 40; ++round) {
      Connected pair = connectPair();
      char byte = 0;
      int fd = -1;
      DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
      channel_->post(receive);
      if (round % 2 == 0) pair.client.sendDescriptors("c", 1, &pipe.ends[1], 1);
      std::thread closer([&] { pair.server.close(); });
      if (round % 2 == 1) {
        std::error_code ec;  // the peer may be gone already
        pair.client.sendDescriptors("c", 1, &pipe.ends[1], 1, ec);
      }
      closer.join();
      CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
      if (!receive.error()) {
        CPPUNIT_ASSERT_EQUAL(std::size_t{1}, receive.descriptorsReceived());
        close(fd);
      } else {
        ASSERT_ERROR(kCancelled, receive.error());
        CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
      }
    }
  }

  // shutdown() racing the arrival: the receive comes back with the
  // descriptor or cancelled, never both, and nothing is left open.
  void testShutdownRacingArrivalLeaksNothing() {
    Connected pair = connectPair();
    Pipe pipe;
    char byte = 0;
    int fds[2] = {-1, -1};
    DescriptorReceiveEvent receive(pair.server, &byte, 1, fds, 2);
    channel_->post(receive);
    const int two[2] = {pipe.ends[1], pipe.ends[1]};
    pair.client.sendDescriptors("s", 1, two, 2);
    channel_->shutdown();
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    if (!receive.error()) {
      CPPUNIT_ASSERT_EQUAL(std::size_t{2}, receive.descriptorsReceived());
      close(fds[0]);
      close(fds[1]);
    } else {
      CPPUNIT_ASSERT(receive.error() == kCancelled || receive.error() == Errc::channel_shut_down);
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
      CPPUNIT_ASSERT_EQUAL(-1, fds[0]);
    }
  }

  // A receive that completed and was never taken from getEvent() when the
  // channel is destroyed: handed back with its descriptors, which are the
  // caller's to close.
  void testDestroyedChannelLeavesReceivedDescriptorsWithTheEvent() {
    Connected pair = connectPair();
    Pipe pipe;
    char byte = 0;
    int fd = -1;
    DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
    pair.client.sendDescriptors("d", 1, &pipe.ends[1], 1);
    channel_->post(receive);  // completes at once, or soon (io_uring)
    std::this_thread::sleep_for(50ms);
    channel_.reset();
    CPPUNIT_ASSERT(!receive.inFlight());
    if (receive.error()) {  // a loaded machine: the shutdown came first
      ASSERT_ERROR(kCancelled, receive.error());
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
      CPPUNIT_ASSERT_EQUAL(-1, fd);
      return;
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, receive.descriptorsReceived());
    assertCarries(fd, pipe, "kept");
    close(fd);
  }

  // Closing the socket while a send waits for room cancels it; the
  // caller's descriptors stay its own.
  void testCloseCancelsAWaitingSend() {
    Connected pair = connectPair();
    fillSendBuffer(pair.client);
    Pipe pipe;
    DescriptorSendEvent send(pair.client, "w", 1, &pipe.ends[1], 1);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(send);
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    pair.client.close();
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &send);
    ASSERT_ERROR(kCancelled, send.error());
    CPPUNIT_ASSERT(fcntl(pipe.ends[1], F_GETFD) >= 0);
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
  }

  // Bytes that carried descriptors, read by a ReadEvent: the kernel closes
  // the descriptors (the pipe sees its last write end go), none stays open
  // here.
  void testReadEventDropsPassedDescriptors() {
    Connected pair = connectPair();
    Pipe pipe;
    pair.client.sendDescriptors("r", 1, &pipe.ends[1], 1);
    pipe.closeWrite();
    char byte = 0;
    evchan::ReadEvent plain(pair.server, &byte, 1);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(plain);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &plain);
    ASSERT_NO_ERROR(plain.error());
    CPPUNIT_ASSERT_EQUAL('r', byte);
    pollfd readable{pipe.ends[0], POLLIN, 0};
    CPPUNIT_ASSERT_EQUAL(1, poll(&readable, 1, 5000));
    char out;
    CPPUNIT_ASSERT_EQUAL(ssize_t{0}, read(pipe.ends[0], &out, 1));
  }

  // A pending receive takes the read slot only: a WriteEvent on the same
  // socket goes meanwhile, and its reply brings the descriptor.
  void testReceiveAndWriteShareTheSocket() {
    Connected pair = connectPair();
    Pipe pipe;
    char byte = 0;
    int fd = -1;
    DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
    evchan::WriteEvent write(pair.server, "ping", 4);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    channel_->post(write);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &write);
    ASSERT_NO_ERROR(write.error());
    char ping[4];
    pair.client.readExactly(ping, 4);
    pair.client.sendDescriptors("p", 1, &pipe.ends[1], 1);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, receive.descriptorsReceived());
    close(fd);
  }

  // The write slot is one per socket: a send waiting for room keeps a
  // WriteEvent out, and the other way round.
  void testSendSlotSharedWithWrites() {
    Connected pair = connectPair();
    const std::size_t filled = fillSendBuffer(pair.client);
    Pipe pipe;
    DescriptorSendEvent send(pair.client, "s", 1, &pipe.ends[1], 1);
    evchan::WriteEvent write(pair.client, "w", 1);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(send);
    std::error_code ec;
    channel_->post(write, ec);
    ASSERT_ERROR(Errc::socket_busy, ec);
    CPPUNIT_ASSERT(!write.inFlight());
    std::vector<char> sink(filled);
    pair.server.readExactly(sink.data(), filled);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &send);
    ASSERT_NO_ERROR(send.error());
    char byte = 0;
    int fd = -1;
    std::size_t received = 0;
    pair.server.receiveDescriptors(&byte, 1, &fd, 1, received);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    close(fd);
  }

  // No room for descriptors at all (a null `fds`, zero capacity) and some
  // arrive: all closed, message_size, the byte consumed.
  void testNoRoomForDescriptorsIsMessageSize() {
    Connected pair = connectPair();
    Pipe pipe;
    pair.client.sendDescriptors("z", 1, &pipe.ends[1], 1);
    pipe.closeWrite();
    char byte = 0;
    DescriptorReceiveEvent receive(pair.server, &byte, 1, nullptr, 0);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(std::errc::message_size, receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, receive.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL('z', byte);
    char out;
    CPPUNIT_ASSERT_EQUAL(ssize_t{0}, read(pipe.ends[0], &out, 1));
  }

  // The process may open one more descriptor (RLIMIT_NOFILE) when three
  // arrive: the kernel installs one and sets MSG_CTRUNC, and the receive
  // fails with message_size, having closed that one (so does the call);
  // the limit back, the next receive works.
  void testNoDescriptorSlotsLeftIsMessageSize() {
    Connected pair = connectPair();
    Pipe pipe;
    const int three[3] = {pipe.ends[1], pipe.ends[1], pipe.ends[1]};
    pair.client.sendDescriptors("n", 1, three, 3);
    char byte = 0;
    int fds[3] = {-1, -1, -1};
    DescriptorReceiveEvent receive(pair.server, &byte, 1, fds, 3);
    ReclaimOnExit reclaim(*channel_);
    {
      LimitDescriptors limit(1);  // one of the three fits
      channel_->post(receive);
      CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    }
    ASSERT_ERROR(std::errc::message_size, receive.error());
    CPPUNIT_ASSERT_EQUAL('n', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
    // UnixSocket::receiveDescriptors() on a thread the same way.
    pair.client.sendDescriptors("c", 1, three, 3);
    std::size_t received = 9;
    std::error_code ec;
    {
      LimitDescriptors limit(1);
      pair.server.receiveDescriptors(&byte, 1, fds, 3, received, ec);
    }
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
    pair.client.sendDescriptors("y", 1, three, 1);
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, receive.descriptorsReceived());
    close(fds[0]);
  }

  // A send to a peer that has gone fails (broken pipe or reset) and
  // raises no SIGPIPE, on whichever thread the backend sends.
  void testSendToAClosedPeerFailsWithoutSigpipe() {
    channel_.reset();
    evchan::test::DefaultSigpipe fatal;  // before the workers start: they inherit it
    channel_ = evchan::test::createOnBackendOrSkip(B, 1);
    Connected pair = connectPair();
    pair.server.close();
    Pipe pipe;
    DescriptorSendEvent send(pair.client, "x", 1, &pipe.ends[1], 1);
    ReclaimOnExit reclaim(*channel_);
    for (int i = 0; i < 2; ++i) {  // the first may still go into the dead socket's buffer
      channel_->post(send);
      CPPUNIT_ASSERT(&nextEvent(*channel_) == &send);
      if (send.error()) break;
    }
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(send.error()),
                           send.error() == std::errc::broken_pipe || send.error() == std::errc::connection_reset);
  }

  // Two threads post their own sends on one socket: one at a time holds
  // the write slot (the other is refused with socket_busy and tries
  // again), and every descriptor arrives once.
  void testSendsPostedFromTwoThreads() {
    constexpr int kEach = 100;
    Connected pair = connectPair();
    Pipe pipe;
    std::atomic<int> busy{0};
    std::string wrong[2];
    auto sender = [&](int which) {
      const char tag = which == 0 ? 'A' : 'B';
      DescriptorSendEvent send(pair.client, &tag, 1, &pipe.ends[1], 1);
      std::atomic<bool> done{false};
      send.setCallback([&](Event&) { done = true; });
      for (int i = 0; i < kEach;) {
        done = false;
        std::error_code ec;
        channel_->post(send, ec);
        if (ec == Errc::socket_busy) {
          ++busy;
          std::this_thread::yield();
          continue;
        }
        if (ec || !evchan::test::eventually([&] { return done.load(); }) || send.error()) {
          wrong[which] = "post: " + evchan::test::describe(ec) + ", send: " + evchan::test::describe(send.error());
          channel_->cancel(send);
          // Back, and its callback, which sets `done` as its last step,
          // has run, before both go.
          if (!ec) {
            while (!done.load()) std::this_thread::yield();
          }
          return;
        }
        while (send.inFlight()) std::this_thread::yield();  // handed back: it may be posted again
        ++i;
      }
    };
    std::thread first(sender, 0), second(sender, 1);
    int counts[2] = {0, 0};
    for (int i = 0; i < 2 * kEach; ++i) {
      char byte = 0;
      int fd = -1;
      std::size_t received = 0;
      std::error_code ec;
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, ec);
      if (ec) break;
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
      close(fd);
      ++counts[byte == 'A' ? 0 : 1];
    }
    first.join();
    second.join();
    CPPUNIT_ASSERT_EQUAL(std::string(), wrong[0] + wrong[1]);
    CPPUNIT_ASSERT_EQUAL(kEach, counts[0]);
    CPPUNIT_ASSERT_EQUAL(kEach, counts[1]);
  }

  // shutdown() ends a task waiting in receiveDescriptors(); a descriptor
  // sent after it stays queued on the socket, nothing is opened here.
  void testShutdownEndsReceiveInTask() {
    Connected pair = connectPair();
    std::error_code ec;
    std::size_t received = 7;
    int fd = -1;
    std::atomic<bool> started{false};
    evchan::TaskHandle task = channel_->spawn([&] {
      char byte;
      started = true;
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, ec);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel_));
    channel_->shutdown();
    evchan::test::joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec),
                           ec == std::errc::operation_canceled || ec == Errc::channel_shut_down);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
    CPPUNIT_ASSERT_EQUAL(-1, fd);
  }

  // Four connections, each with a task sending descriptors with bulk
  // bytes between them (so that sends wait for room) and a task receiving
  // them, both ways at once, on two workers: every descriptor arrives
  // with its tag, and none is left open.
  void testTasksPassDescriptorsBothWays() {
    constexpr int kPairs = 4, kRounds = 100;
    constexpr std::size_t kBulk = 300000;  // more than a socket buffer holds
    channel_.reset();
    EventChannel::Options options;
    options.backend = B;
    options.initialThreads = 2;
    channel_ = evchan::test::createOnBackendOrSkip(options);
    Pipe pipe;
    std::vector<Connected> pairs;
    for (int i = 0; i < kPairs; ++i) pairs.push_back(connectPair());
    std::atomic<int> failures{0};
    std::vector<evchan::TaskHandle> tasks;
    for (int i = 0; i < kPairs; ++i) {
      for (int direction = 0; direction < 2; ++direction) {
        UnixSocket& from = direction == 0 ? pairs[i].client : pairs[i].server;
        UnixSocket& to = direction == 0 ? pairs[i].server : pairs[i].client;
        tasks.push_back(channel_->spawn([&, &from = from] {
          std::vector<char> bulk(kBulk, 'b');
          for (int round = 0; round < kRounds; ++round) {
            const char tag = static_cast<char>('a' + round % 26);
            from.sendDescriptors(&tag, 1, &pipe.ends[1], 1);
            from.writeAll(bulk.data(), bulk.size());
          }
        }));
        tasks.push_back(channel_->spawn([&, &to = to] {
          std::vector<char> bulk(kBulk);
          for (int round = 0; round < kRounds; ++round) {
            char tag = 0;
            int fd = -1;
            std::size_t received = 0;
            to.receiveDescriptors(&tag, 1, &fd, 1, received);
            if (received == 1) close(fd);
            if (received != 1 || tag != static_cast<char>('a' + round % 26)) ++failures;
            to.readExactly(bulk.data(), bulk.size());
          }
        }));
      }
    }
    for (evchan::TaskHandle& task : tasks) evchan::test::joinWithin(task, 60s);
    CPPUNIT_ASSERT_EQUAL(0, failures.load());
  }

  // A thread cancels the receive over and over while its callback, on two
  // workers, re-posts it and a sender passes 500 descriptors: each arrives
  // exactly once, in order, and a cancelled completion never holds one.
  void testCancelsHammeringCallbackReceives() {
    constexpr int kRounds = 500;
    channel_.reset();
    EventChannel::Options options;
    options.backend = B;
    options.initialThreads = 2;
    channel_ = evchan::test::createOnBackendOrSkip(options);
    Connected pair = connectPair();
    Pipe pipe;
    char byte = 0;
    int fd = -1;
    std::atomic<int> received{0}, cancelled{0}, failures{0};
    std::atomic<bool> finished{false};
    DescriptorReceiveEvent receive(pair.server, &byte, 1, &fd, 1);
    receive.setCallback([&](Event& event) {
      auto& done = static_cast<DescriptorReceiveEvent&>(event);
      if (done.error() == kCancelled) {
        if (done.descriptorsReceived() != 0 || fd != -1) ++failures;
        ++cancelled;
      } else if (done.error() || done.descriptorsReceived() != 1 ||
                 byte != static_cast<char>('a' + received.load() % 26)) {
        ++failures;
        finished = true;
        return;
      } else {
        close(fd);
        fd = -1;
        if (++received == kRounds) {
          finished = true;
          return;
        }
      }
      std::error_code ec;
      channel_->post(done, ec);
      if (ec) {
        ++failures;
        finished = true;
      }
    });
    ReclaimOnExit reclaim(*channel_);
    // The first cancel comes before anything is sent, so it ends the
    // receive on every backend (the callback posts it again); how many of
    // the hammering thread's win their race depends on timing (on
    // io_uring, often none), so only what they must not break is checked.
    channel_->post(receive);
    channel_->cancel(receive);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return cancelled.load() == 1; }));
    std::thread canceller([&] {
      while (!finished.load()) {
        channel_->cancel(receive);
        std::this_thread::yield();
      }
    });
    for (int i = 0; i < kRounds && !finished.load(); ++i) {
      const char tag = static_cast<char>('a' + i % 26);
      pair.client.sendDescriptors(&tag, 1, &pipe.ends[1], 1);
      // One at a time, so that the receive parks (and is cancelled) each round.
      while (received.load() <= i && !finished.load()) std::this_thread::yield();
    }
    const bool ended = evchan::test::eventually([&] { return finished.load(); });
    finished = true;
    canceller.join();
    CPPUNIT_ASSERT(ended);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return !receive.inFlight(); }));
    CPPUNIT_ASSERT_EQUAL(0, failures.load());
    CPPUNIT_ASSERT_EQUAL(kRounds, received.load());
    std::printf("hammering cancels (%s): %d of them ended a receive in %d rounds\n", evchan::backendName(B),
                cancelled.load() - 1, kRounds);
  }

  // Both calls wait (their events, each with its message room, on the
  // task's stack) in tasks with the smallest stack a task may have.
  void testSmallestTaskStackWaits() {
    Connected pair = connectPair();
    const std::size_t filled = fillSendBuffer(pair.client);
    Pipe pipe;
    evchan::TaskOptions small;
    small.stackSize = 16 * 1024;
    std::size_t sent = 0, received = 0;
    char byte = 0;
    int fd = -1;
    evchan::TaskHandle sender = channel_->spawn([&] { sent = pair.client.sendDescriptors("s", 1, &pipe.ends[1], 1); },
                                                small);
    evchan::TaskHandle receiver = channel_->spawn([&] {
      std::vector<char> sink(filled);
      pair.server.readExactly(sink.data(), filled);
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received);
    }, small);
    evchan::test::joinWithin(sender);
    evchan::test::joinWithin(receiver);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, sent);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    CPPUNIT_ASSERT_EQUAL('s', byte);
    close(fd);
  }

  // receiveDescriptors() in a task, past the socket's timeout: timed_out,
  // and the descriptor sent afterwards waits for the next call.
  void testReceiveInTaskTimesOutAndLeavesDescriptorQueued() {
    Connected pair = connectPair();
    Pipe pipe;
    std::error_code first, second;
    std::size_t received = 0;
    char byte = 0;
    int fd = -1;
    std::atomic<bool> timedOut{false};
    evchan::TaskHandle task = channel_->spawn([&] {
      pair.server.setTimeout(30ms);
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, first);
      timedOut = true;
      pair.server.setTimeout(kPatience);
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, second);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return timedOut.load(); }));
    pair.client.sendDescriptors("t", 1, &pipe.ends[1], 1);
    evchan::test::joinWithin(task);
    ASSERT_ERROR(std::errc::timed_out, first);
    ASSERT_NO_ERROR(second);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    CPPUNIT_ASSERT_EQUAL('t', byte);
    assertCarries(fd, pipe, "later");
    close(fd);
  }

  // TaskHandle::cancel() ends receiveDescriptors() in a task.
  void testTaskCancelEndsReceiveInTask() {
    Connected pair = connectPair();
    std::error_code ec;
    std::size_t received = 7;
    std::atomic<bool> started{false};
    evchan::TaskHandle task = channel_->spawn([&] {
      char byte;
      int fd = -1;
      started = true;
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, ec);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel_));
    CPPUNIT_ASSERT(task.cancel());
    evchan::test::joinWithin(task);
    ASSERT_ERROR(kCancelled, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
  }

  // A DeadlineScope ends receiveDescriptors() in a task with timed_out.
  void testDeadlineScopeEndsReceiveInTask() {
    Connected pair = connectPair();
    std::error_code ec;
    evchan::TaskHandle task = channel_->spawn([&] {
      char byte;
      int fd = -1;
      std::size_t received = 0;
      evchan::this_task::DeadlineScope deadline(30ms);
      pair.server.receiveDescriptors(&byte, 1, &fd, 1, received, ec);
    });
    evchan::test::joinWithin(task);
    ASSERT_ERROR(std::errc::timed_out, ec);
  }

  // UnixSocket::cancel() racing the arrival of each descriptor, the
  // receiver in a task: every descriptor arrives once and in order.
  void testCancelRacingReceivesInTask() {
    constexpr int kRounds = 200;
    Connected pair = connectPair();
    Pipe pipe;
    std::atomic<int> received{0};
    std::atomic<bool> stopped{false};
    std::string wrong;
    evchan::TaskHandle task = channel_->spawn([&] {
      for (int round = 0; round < kRounds;) {
        char byte = 0;
        int fd = -1;
        std::size_t count = 0;
        std::error_code ec;
        pair.server.receiveDescriptors(&byte, 1, &fd, 1, count, ec);
        if (ec == std::errc::operation_canceled) {
          if (count != 0 || fd != -1) {
            wrong = "round " + std::to_string(round) + ": cancelled with a descriptor";
            if (fd >= 0) close(fd);
            break;
          }
          continue;
        }
        if (fd >= 0) close(fd);
        if (ec || count != 1 || byte != static_cast<char>('a' + round % 26)) {
          wrong = "round " + std::to_string(round) + ": " + evchan::test::describe(ec);
          break;
        }
        received = ++round;
      }
      stopped = true;
    });
    for (int round = 0; round < kRounds && !stopped.load(); ++round) {
      const char tag = static_cast<char>('a' + round % 26);
      if (round % 2 == 0) {
        pair.client.sendDescriptors(&tag, 1, &pipe.ends[1], 1);
        pair.server.cancel();
      } else {
        pair.server.cancel();
        pair.client.sendDescriptors(&tag, 1, &pipe.ends[1], 1);
      }
      if (!evchan::test::eventually([&] { return received.load() > round || stopped.load(); })) break;
    }
    if (!evchan::test::eventually([&] { return task.done(); })) {
      pair.server.close();
    }
    evchan::test::joinWithin(task);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(wrong, std::string(), wrong);
    CPPUNIT_ASSERT_EQUAL(kRounds, received.load());
  }

 private:
};

}  // namespace

CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Epoll>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Poll>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Select>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::AprPollset>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::IoUring>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Aio>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Iocp>);
