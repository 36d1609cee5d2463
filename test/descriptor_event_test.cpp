// SPDX-License-Identifier: Apache-2.0
// Tests of DescriptorSendEvent and DescriptorReceiveEvent on every
// backend: descriptors and their bytes come back with the event (working,
// close-on-exec), a send waits for room, too many descriptors are all
// closed, the end of the stream and a close are reported once, and post()
// refuses bad input.
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/descriptor_events.h>
#include <evchan/evchan.h>
#include <evchan/unix_socket.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
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

template <Backend B>
class DescriptorEventTest : public evchan::test::LeakCheckedFixture {
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
  CPPUNIT_TEST_SUITE_END();

 public:
  static std::string suiteName() { return std::string("DescriptorEventTest<") + evchan::backendName(B) + ">"; }

  void setUp() override {
    LeakCheckedFixture::setUp();
    EventChannel::Options options;
    options.backend = B;
    options.initialThreads = 1;
    channel_ = evchan::test::createOnBackendOrSkip(options);
  }

  void tearDown() override {
    channel_.reset();
    LeakCheckedFixture::tearDown();
  }

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

 private:
  std::unique_ptr<EventChannel> channel_;
};

}  // namespace

CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Epoll>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Poll>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Select>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::AprPollset>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::IoUring>);
CPPUNIT_TEST_SUITE_REGISTRATION(DescriptorEventTest<Backend::Aio>);
