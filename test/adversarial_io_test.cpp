// SPDX-License-Identifier: Apache-2.0
// UnixSocket descriptor passing against a hostile peer that writes its
// control messages by hand (sendmsg), UdpSocket against odd senders, sizes
// and threads, and the EventChannel used from several threads the way the
// docs allow (and, where they forbid it, that the library says so).
// POSIX only.
#include <cppunit/extensions/HelperMacros.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <evchan/datagram_events.h>
#include <evchan/descriptor_events.h>
#include <evchan/dispatch_event.h>
#include <evchan/evchan.h>
#include <evchan/timer_event.h>
#include <evchan/udp_socket.h>
#include <evchan/unix_socket.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/reclaim_on_exit.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

using namespace std::chrono_literals;
using evchan::Address;
using evchan::AddressFamily;
using evchan::Errc;
using evchan::Event;
using evchan::EventChannel;
using evchan::UdpSocket;
using evchan::UnixListener;
using evchan::UnixSocket;

namespace {

constexpr evchan::Duration kPatience = 30s;

std::string abstractName() {
  static std::atomic<int> counter{0};
  return "@evchan-adversarial-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
}

// A pipe whose read end tells whether every copy of the write end is gone.
struct Pipe {
  int ends[2] = {-1, -1};
  Pipe() {
    CPPUNIT_ASSERT_EQUAL(0, pipe2(ends, O_CLOEXEC));
    CPPUNIT_ASSERT_EQUAL(0, fcntl(ends[0], F_SETFL, O_NONBLOCK));
  }
  ~Pipe() {
    for (int fd : ends)
      if (fd >= 0) close(fd);
  }
  void closeWriteEnd() {
    close(ends[1]);
    ends[1] = -1;
  }
  // With our own write end closed: true when no copy is open anywhere
  // (read() sees the end of the pipe), false while one still is.
  bool everyWriterClosed() const {
    char byte;
    const ssize_t n = read(ends[0], &byte, 1);
    return n == 0;
  }
};

// An evchan UnixSocket whose peer is a raw descriptor the test drives.
struct HostilePair {
  UnixSocket socket;
  int raw = -1;
  HostilePair() {
    const std::string name = abstractName();
    UnixListener listener = UnixListener::listen(name);
    raw = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CPPUNIT_ASSERT(raw >= 0);
    sockaddr_un address = {};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path + 1, name.data() + 1, name.size() - 1);
    const socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    CPPUNIT_ASSERT_EQUAL(0, connect(raw, reinterpret_cast<sockaddr*>(&address), length));
    socket = listener.accept();
    socket.setTimeout(kPatience);
  }
  ~HostilePair() {
    if (raw >= 0) close(raw);
  }
  void closeRaw() {
    close(raw);
    raw = -1;
  }
};

// What the hostile peer attaches to one sendmsg.
struct Attachments {
  std::vector<std::vector<int>> rights;  // one SCM_RIGHTS message per entry
  bool credentials = false;              // an SCM_CREDENTIALS message first
};

// sendmsg() of `size` bytes with `attached`, as a peer that is not evchan
// would write it.  Returns sendmsg's result.
ssize_t rawSend(int fd, const void* data, std::size_t size, const Attachments& attached) {
  std::vector<unsigned char> control;
  std::size_t room = attached.credentials ? CMSG_SPACE(sizeof(ucred)) : 0;
  for (const std::vector<int>& fds : attached.rights) room += CMSG_SPACE(sizeof(int) * fds.size());
  control.assign(room, 0);
  iovec piece = {const_cast<void*>(data), size};
  msghdr message = {};
  message.msg_iov = &piece;
  message.msg_iovlen = 1;
  message.msg_control = room != 0 ? control.data() : nullptr;
  message.msg_controllen = room;
  cmsghdr* header = room != 0 ? CMSG_FIRSTHDR(&message) : nullptr;
  if (attached.credentials) {
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_CREDENTIALS;
    header->cmsg_len = CMSG_LEN(sizeof(ucred));
    const ucred mine = {getpid(), getuid(), getgid()};
    std::memcpy(CMSG_DATA(header), &mine, sizeof mine);
    header = CMSG_NXTHDR(&message, header);
  }
  for (const std::vector<int>& fds : attached.rights) {
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
    header = CMSG_NXTHDR(&message, header);
  }
  return sendmsg(fd, &message, MSG_NOSIGNAL);
}

Attachments rights(std::vector<int> fds) {
  Attachments attached;
  attached.rights.push_back(std::move(fds));
  return attached;
}

void closeAll(const int* fds, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) close(fds[i]);
}

// The descriptor refers to the write end of `pipe`: a byte written through
// it comes out of the read end.
void assertWritesTo(int fd, const Pipe& pipe) {
  CPPUNIT_ASSERT_EQUAL(ssize_t{1}, write(fd, "w", 1));
  char byte = 0;
  CPPUNIT_ASSERT_EQUAL(ssize_t{1}, read(pipe.ends[0], &byte, 1));
  CPPUNIT_ASSERT_EQUAL('w', byte);
}

evchan::Duration generousSeconds(int seconds) {
  return std::chrono::duration_cast<evchan::Duration>(evchan::test::generous(std::chrono::seconds(seconds)));
}

Address loopback(int port = 0) { return Address::fromNumeric("127.0.0.1", port, AddressFamily::IPv4); }

UdpSocket boundUdp() {
  UdpSocket socket = UdpSocket::open(AddressFamily::IPv4);
  socket.bind(loopback());
  socket.setTimeout(kPatience);
  return socket;
}

// A one-worker channel on `backend`, or null where this host has none.
std::unique_ptr<EventChannel> oneWorkerChannel(evchan::Backend backend) {
  EventChannel::Options options;
  options.backend = backend;
  options.initialThreads = 1;
  std::error_code ec;
  return EventChannel::create(options, ec);
}

// A plain client socket connected to `listener` (on 127.0.0.1), for the
// raw bytes and MSG_OOB a test sends.
int connectRaw(const evchan::TcpListener& listener) {
  const int raw = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CPPUNIT_ASSERT(raw >= 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(listener.port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CPPUNIT_ASSERT_EQUAL(0, connect(raw, reinterpret_cast<sockaddr*>(&address), sizeof address));
  return raw;
}

// The next event from getEvent(), failing the test rather than hanging.
Event& nextEvent(EventChannel& channel) {
  Event* event = channel.getEvent(kPatience);
  CPPUNIT_ASSERT_MESSAGE("no event came back", event != nullptr);
  return *event;
}

// A one-worker channel on each backend this host has (Epoll, Poll, Select,
// AprPollset, IoUring; those it cannot create are left out).
std::vector<std::unique_ptr<EventChannel>> oneWorkerChannelOnEveryBackend() {
  std::vector<std::unique_ptr<EventChannel>> channels;
  for (evchan::Backend backend : {evchan::Backend::Epoll, evchan::Backend::Poll, evchan::Backend::Select,
                                  evchan::Backend::AprPollset, evchan::Backend::IoUring}) {
    std::unique_ptr<EventChannel> channel = oneWorkerChannel(backend);
    if (channel) channels.push_back(std::move(channel));
  }
  return channels;
}

}  // namespace

class AdversarialIoTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(AdversarialIoTest);
  CPPUNIT_TEST(testMoreDescriptorsThanCapacityAreAllClosed);
  CPPUNIT_TEST(testTwoRightsMessagesInOneSend);
  CPPUNIT_TEST(testCredentialsBesideDescriptors);
  CPPUNIT_TEST(testDescriptorsWithoutBytesNeverArrive);
  CPPUNIT_TEST(testReadSomeDropsDescriptorsMidStream);
  CPPUNIT_TEST(testReadSomeInTaskDropsDescriptors);
  CPPUNIT_TEST(testReceiveStopsAtTheEndOfEachMessage);
  CPPUNIT_TEST(testReadStoppedByDescriptorsIsNotDrained);
  CPPUNIT_TEST(testReadStoppedByUrgentDataIsNotDrained);
  CPPUNIT_TEST(testReadAtTheUrgentMarkSurvivesSignals);
  CPPUNIT_TEST(testTruncatedControlClosesWhatArrived);
  CPPUNIT_TEST(testReceiveEventTruncatedOnEveryBackend);
  CPPUNIT_TEST(testPeerClosesAfterSendingDescriptors);
  CPPUNIT_TEST(testPeerClosesWhileReceiverWaits);
  CPPUNIT_TEST(testConnectedUdpIgnoresOtherSenders);
  CPPUNIT_TEST(testEmptyAndLargestDatagrams);
  CPPUNIT_TEST(testZeroSizeReceiveBuffer);
  CPPUNIT_TEST(testZeroSizeReceiveInTask);
  CPPUNIT_TEST(testUdpCloseEndsReceiversOnThreads);
  CPPUNIT_TEST(testUdpCloseAndCancelEndReceiveInTask);
  CPPUNIT_TEST(testManyThreadsSendOnOneUdpSocket);
  CPPUNIT_TEST(testDualStackAnswersAnIPv4Sender);
  CPPUNIT_TEST(testRefusedPeerEndsEveryReceive);
  CPPUNIT_TEST(testPostingAnEventInFlightIsRefused);
  CPPUNIT_TEST(testCancelFromManyThreadsAtOnce);
  CPPUNIT_TEST(testCancelledAcceptAmidResetConnections);
  CPPUNIT_TEST(testDestroyingAnEventInFlightAborts);
  CPPUNIT_TEST(testShutdownFromTwoThreadsWithConsumers);
  CPPUNIT_TEST(testShutdownFromCallbackAndOutside);
  CPPUNIT_TEST(testPostRacingShutdown);
  CPPUNIT_TEST(testCallbacksRepostingThroughShutdown);
  CPPUNIT_TEST(testDestroyedWhileConsumersWait);
  CPPUNIT_TEST(testDestroyWakesConsumersWithNullptr);
  CPPUNIT_TEST(testDestroyedFromItsOwnCallback);
  CPPUNIT_TEST(testSocketPostsRacingShutdownOnEveryBackend);
  CPPUNIT_TEST_SUITE_END();

 public:
  // --- Descriptor passing against a hostile peer -------------------------

  // Five descriptors where the receiver has room for two: the call fails
  // with message_size, and every copy is closed (none kept, none leaked).
  void testMoreDescriptorsThanCapacityAreAllClosed() {
    HostilePair pair;
    Pipe pipe;
    const int w = pipe.ends[1];
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, rawSend(pair.raw, "m", 1, rights({w, w, w, w, w})));
    pipe.closeWriteEnd();
    char byte = 0;
    int fds[2] = {-1, -1};
    std::size_t received = 7;
    std::error_code ec;
    pair.socket.receiveDescriptors(&byte, 1, fds, 2, received, ec);
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
    CPPUNIT_ASSERT_MESSAGE("a received copy of the write end is still open", pipe.everyWriterClosed());
    // And with no room at all (a receiver expecting none).
    Pipe second;
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, rawSend(pair.raw, "n", 1, rights({second.ends[1]})));
    second.closeWriteEnd();
    pair.socket.receiveDescriptors(&byte, 1, nullptr, 0, received, ec);
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT(second.everyWriterClosed());
  }

  // One sendmsg with two SCM_RIGHTS messages (the kernel joins them): the
  // receiver gets all of them, in order, when it has room, and none of
  // them (all closed) when it has room for fewer.
  void testTwoRightsMessagesInOneSend() {
    HostilePair pair;
    Pipe a, b;
    Attachments two;
    two.rights = {{a.ends[1], a.ends[1]}, {b.ends[1]}};
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, rawSend(pair.raw, "t", 1, two));
    char byte = 0;
    int fds[3] = {-1, -1, -1};
    std::size_t received = 0;
    pair.socket.receiveDescriptors(&byte, 1, fds, 3, received);
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, received);
    assertWritesTo(fds[0], a);
    assertWritesTo(fds[1], a);
    assertWritesTo(fds[2], b);
    closeAll(fds, 3);
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, rawSend(pair.raw, "u", 1, two));
    a.closeWriteEnd();
    b.closeWriteEnd();
    std::error_code ec;
    pair.socket.receiveDescriptors(&byte, 1, fds, 2, received, ec);
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT(a.everyWriterClosed());
    CPPUNIT_ASSERT(b.everyWriterClosed());
  }

  // SCM_CREDENTIALS before SCM_RIGHTS in one message: the descriptors
  // arrive (the credentials message is not mistaken for descriptors), and
  // the peer's credentials are the kernel's record of this process.
  void testCredentialsBesideDescriptors() {
    HostilePair pair;
    Pipe pipe;
    Attachments both = rights({pipe.ends[1]});
    both.credentials = true;
    CPPUNIT_ASSERT_EQUAL(ssize_t{2}, rawSend(pair.raw, "cc", 2, both));
    char bytes[2] = {};
    int fds[4] = {-1, -1, -1, -1};
    std::size_t received = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, pair.socket.receiveDescriptors(bytes, 2, fds, 4, received));
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    assertWritesTo(fds[0], pipe);
    close(fds[0]);
    const evchan::PeerCredentials credentials = pair.socket.peerCredentials();
    CPPUNIT_ASSERT_EQUAL(std::int64_t{getpid()}, credentials.pid);
    CPPUNIT_ASSERT_EQUAL(static_cast<std::uint32_t>(getuid()), credentials.uid);
  }

  // Descriptors with zero data bytes: a stream socket sends nothing, so
  // they never arrive; the next plain byte comes without any.
  void testDescriptorsWithoutBytesNeverArrive() {
    HostilePair pair;
    Pipe pipe;
    rawSend(pair.raw, "", 0, rights({pipe.ends[1], pipe.ends[1]}));
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, write(pair.raw, "p", 1));
    pipe.closeWriteEnd();
    char byte = 0;
    int fds[2] = {-1, -1};
    std::size_t received = 9;
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.socket.receiveDescriptors(&byte, 1, fds, 2, received));
    CPPUNIT_ASSERT_EQUAL('p', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
    CPPUNIT_ASSERT(pipe.everyWriterClosed());
  }

  // Descriptors attached to bytes in the middle of what a plain readSome()
  // reads: the bytes come through, the descriptors are closed, not kept
  // in this process.
  void testReadSomeDropsDescriptorsMidStream() {
    HostilePair pair;
    Pipe pipe;
    CPPUNIT_ASSERT_EQUAL(ssize_t{2}, write(pair.raw, "aa", 2));
    CPPUNIT_ASSERT_EQUAL(ssize_t{2}, rawSend(pair.raw, "bb", 2, rights({pipe.ends[1], pipe.ends[1]})));
    CPPUNIT_ASSERT_EQUAL(ssize_t{2}, write(pair.raw, "cc", 2));
    pipe.closeWriteEnd();
    std::string got;
    char buffer[16];
    while (got.size() < 6) got.append(buffer, pair.socket.readSome(buffer, sizeof buffer));
    CPPUNIT_ASSERT_EQUAL(std::string("aabbcc"), got);
    CPPUNIT_ASSERT(pipe.everyWriterClosed());
  }

  // The same in a task (the read waits for its event) and through a
  // ReadEvent, on the default backend and on io_uring where there is one.
  void testReadSomeInTaskDropsDescriptors() {
    for (evchan::Backend backend : {evchan::Backend::Default, evchan::Backend::IoUring}) {
      std::unique_ptr<EventChannel> channel = oneWorkerChannel(backend);
      if (!channel) continue;  // no io_uring here
      HostilePair pair;
      Pipe pipe;
      std::string got;
      evchan::TaskHandle reader = channel->spawn([&] {
        char buffer[16];
        while (got.size() < 4) got.append(buffer, pair.socket.readSome(buffer, sizeof buffer));
      });
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, write(pair.raw, "xx", 2));
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, rawSend(pair.raw, "yy", 2, rights({pipe.ends[1]})));
      reader.join();
      CPPUNIT_ASSERT_EQUAL(std::string("xxyy"), got);
      char buffer[8];
      evchan::ReadEvent read(pair.socket, buffer, sizeof buffer);
      CPPUNIT_ASSERT_EQUAL(ssize_t{1}, rawSend(pair.raw, "z", 1, rights({pipe.ends[1], pipe.ends[1]})));
      channel->post(read);
      CPPUNIT_ASSERT(&nextEvent(*channel) == &read);
      ASSERT_NO_ERROR(read.error());
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, read.bytesTransferred());
      pipe.closeWriteEnd();
      CPPUNIT_ASSERT_MESSAGE(channel->backendName(), pipe.everyWriterClosed());
    }
  }

  // The kernel ends a plain read at the end of bytes that carried
  // descriptors (it drops them there), so the read comes back short while
  // more bytes wait in the socket.  The next read must get them at once:
  // a backend that takes the short read for "drained" parks it instead,
  // and with nothing more coming from the peer it waits forever.
  void testReadStoppedByDescriptorsIsNotDrained() {
    int backends = 0;
    for (std::unique_ptr<EventChannel>& channel : oneWorkerChannelOnEveryBackend()) {
      std::error_code ec;
      ++backends;
      const std::string name = channel->backendName();
      HostilePair pair;
      Pipe pipe;
      char buffer[16];
      evchan::ReadEvent read(pair.socket, buffer, sizeof buffer);
      // A first read registers the socket with the backend.
      CPPUNIT_ASSERT_EQUAL(ssize_t{1}, write(pair.raw, "0", 1));
      channel->post(read);
      CPPUNIT_ASSERT(&nextEvent(*channel) == &read);
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, write(pair.raw, "xx", 2));
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, rawSend(pair.raw, "yy", 2, rights({pipe.ends[1]})));
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, write(pair.raw, "zz", 2));
      std::string got;
      while (got.size() < 6) {
        channel->post(read);
        Event* done = channel->getEvent(generousSeconds(5));
        if (done == nullptr && channel->cancel(read)) done = channel->getEvent(kPatience);  // to fail cleanly
        CPPUNIT_ASSERT(done == &read);
        CPPUNIT_ASSERT_MESSAGE(name + ": the read after the descriptors' bytes never completed (got \"" + got + "\")",
                               !read.error());
        got.append(buffer, read.bytesTransferred());
      }
      CPPUNIT_ASSERT_EQUAL(std::string("xxyyzz"), got);
      // The same in a task: readSome() until all six bytes are in.
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, write(pair.raw, "aa", 2));
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, rawSend(pair.raw, "bb", 2, rights({pipe.ends[1]})));
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, write(pair.raw, "cc", 2));
      std::string inTask;
      std::error_code taskError;
      pair.socket.setTimeout(generousSeconds(5));
      evchan::TaskHandle task = channel->spawn([&] {
        char inside[16];
        while (inTask.size() < 6 && !taskError) inTask.append(inside, pair.socket.readSome(inside, sizeof inside, taskError));
      });
      task.join();
      CPPUNIT_ASSERT_MESSAGE(name + " task: " + taskError.message() + " after \"" + inTask + "\"", !taskError);
      CPPUNIT_ASSERT_EQUAL(std::string("aabbcc"), inTask);
      pipe.closeWriteEnd();
      CPPUNIT_ASSERT(pipe.everyWriterClosed());
    }
    CPPUNIT_ASSERT(backends >= 2);
  }

  // TCP's urgent byte (MSG_OOB, which telnet's "Synch" sends) ends a read
  // at the urgent mark the same way: the bytes after it must still come.
  // So does a Unix stream socket's (Linux 5.15 and later).
  void testReadStoppedByUrgentDataIsNotDrained() {
    for (evchan::Backend backend : {evchan::Backend::Epoll, evchan::Backend::Poll, evchan::Backend::IoUring}) {
      std::unique_ptr<EventChannel> channel = oneWorkerChannel(backend);
      if (!channel) continue;
      const std::string name = channel->backendName();
      evchan::TcpListener listener = evchan::TcpListener::listen(evchan::Endpoint{"127.0.0.1", 0});
      const int raw = connectRaw(listener);
      evchan::TcpSocket socket = listener.accept();
      char buffer[16];
      evchan::ReadEvent read(socket, buffer, sizeof buffer);
      CPPUNIT_ASSERT_EQUAL(ssize_t{1}, write(raw, "0", 1));
      channel->post(read);
      CPPUNIT_ASSERT(&nextEvent(*channel) == &read);
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, send(raw, "xx", 2, 0));
      CPPUNIT_ASSERT_EQUAL(ssize_t{1}, send(raw, "!", 1, MSG_OOB));
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, send(raw, "zz", 2, 0));
      std::this_thread::sleep_for(20ms);  // all of it in the receive queue before the first read
      std::string got;
      while (got.size() < 4) {
        channel->post(read);
        Event* done = channel->getEvent(generousSeconds(5));
        if (done == nullptr && channel->cancel(read)) done = channel->getEvent(kPatience);  // to fail cleanly
        CPPUNIT_ASSERT(done == &read);
        CPPUNIT_ASSERT_MESSAGE(name + ": the read after the urgent mark never completed (got \"" + got + "\")",
                               !read.error());
        got.append(buffer, read.bytesTransferred());
      }
      close(raw);
      CPPUNIT_ASSERT_EQUAL(std::string("xxzz"), got);
      // Unix stream sockets have MSG_OOB too (Linux 5.15 and later).
      HostilePair pair;
      evchan::ReadEvent unixRead(pair.socket, buffer, sizeof buffer);
      CPPUNIT_ASSERT_EQUAL(ssize_t{1}, write(pair.raw, "0", 1));
      channel->post(unixRead);
      CPPUNIT_ASSERT(&nextEvent(*channel) == &unixRead);
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, send(pair.raw, "uu", 2, 0));
      if (send(pair.raw, "!", 1, MSG_OOB) != 1) continue;  // no AF_UNIX OOB in this kernel
      CPPUNIT_ASSERT_EQUAL(ssize_t{2}, send(pair.raw, "vv", 2, 0));
      got.clear();
      while (got.size() < 4) {
        channel->post(unixRead);
        Event* done = channel->getEvent(generousSeconds(5));
        if (done == nullptr && channel->cancel(unixRead)) done = channel->getEvent(kPatience);
        CPPUNIT_ASSERT(done == &unixRead);
        CPPUNIT_ASSERT_MESSAGE(name + ": the Unix read after the urgent mark never completed (got \"" + got + "\")",
                               !unixRead.error());
        got.append(buffer, unixRead.bytesTransferred());
      }
      CPPUNIT_ASSERT_EQUAL(std::string("uuvv"), got);
    }
  }

  // Linux's recv() at the urgent mark with nothing read yet fails with
  // EAGAIN, the bytes after the mark still queued, when a signal is
  // pending for the reading thread: any signal with a handler, or an
  // io_uring completion's notification for a thread that submitted to a
  // ring.  The readiness report is gone by then, so a read that parked on
  // that EAGAIN waited for ever (seen once in CI).  Here a signal storm hits
  // the thread that posts the reads (which makes them itself: the channel
  // knows urgent data came), round after round of the urgent scenario on
  // many connections at once; every read must complete.  Each signal lands
  // in such a recv() rarely, hence the rounds.
  void testReadAtTheUrgentMarkSurvivesSignals() {
    struct sigaction ignore = {};
    ignore.sa_handler = [](int) {};
    ignore.sa_flags = SA_RESTART;
    sigemptyset(&ignore.sa_mask);
    struct sigaction saved = {};
    CPPUNIT_ASSERT_EQUAL(0, sigaction(SIGUSR2, &ignore, &saved));
    const pthread_t reader = pthread_self();
    std::atomic<bool> stop{false};
    std::atomic<bool> storming{false};  // only while this thread posts the reads at the mark
    std::thread storm([&] {
      while (!stop.load()) {
        if (storming.load()) {
          pthread_kill(reader, SIGUSR2);
        } else {
          std::this_thread::yield();
        }
      }
    });
    std::string failure;
    for (evchan::Backend backend : {evchan::Backend::Epoll, evchan::Backend::Poll, evchan::Backend::IoUring}) {
      if (!failure.empty()) break;
      std::unique_ptr<EventChannel> channel = oneWorkerChannel(backend);
      if (!channel) continue;
      const std::string name = channel->backendName();
      evchan::TcpListener listener = evchan::TcpListener::listen(evchan::Endpoint{"127.0.0.1", 0});
      constexpr int kConnections = 32;
      struct Connection {
        int raw = -1;
        evchan::TcpSocket socket;
        char buffer[16] = {};
        std::unique_ptr<evchan::ReadEvent> read;
      };
      std::vector<Connection> connections(kConnections);
      for (Connection& connection : connections) {
        connection.raw = connectRaw(listener);
        connection.socket = listener.accept();
        connection.read =
            std::make_unique<evchan::ReadEvent>(connection.socket, connection.buffer, sizeof connection.buffer);
      }
      // Posts every connection's read, then takes every completion: the
      // bytes each read, or the failure.
      auto readAll = [&](const char* what, bool underStorm, const char* expected, int round) {
        storming = underStorm;
        for (Connection& connection : connections) channel->post(*connection.read);
        storming = false;
        for (int done = 0; done < kConnections; ++done) {
          Event* event = channel->getEvent(generousSeconds(5));
          if (event == nullptr) {
            failure = name + " round " + std::to_string(round) + ": " + what + " never completed on " +
                      std::to_string(kConnections - done) + " connection(s)";
            for (Connection& connection : connections) {
              if (channel->cancel(*connection.read)) channel->getEvent(kPatience);
            }
            return;
          }
          auto* read = static_cast<evchan::ReadEvent*>(event);
          const std::string got(static_cast<const char*>(read->buffer()), read->bytesTransferred());
          if (read->error() || got != expected) {
            failure = name + " round " + std::to_string(round) + ": " + what + " gave \"" + got + "\", " +
                      evchan::test::describe(read->error());
          }
        }
      };
      for (int round = 0; round < 300 && failure.empty(); ++round) {
        for (Connection& connection : connections) {
          CPPUNIT_ASSERT_EQUAL(ssize_t{2}, send(connection.raw, "xx", 2, 0));
          CPPUNIT_ASSERT_EQUAL(ssize_t{1}, send(connection.raw, "!", 1, MSG_OOB));
          CPPUNIT_ASSERT_EQUAL(ssize_t{2}, send(connection.raw, "zz", 2, 0));
        }
        std::this_thread::sleep_for(2ms);  // most often all of it has arrived by now
        readAll("the read up to the mark", false, "xx", round);
        if (failure.empty()) readAll("the read after the mark", true, "zz", round);
      }
      for (Connection& connection : connections) close(connection.raw);
    }
    stop = true;
    storm.join();
    sigaction(SIGUSR2, &saved, nullptr);
    CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
  }

  // Two messages, each with its own descriptors, queued before the
  // receiver looks: a receive with room for both never merges them.
  void testReceiveStopsAtTheEndOfEachMessage() {
    HostilePair pair;
    Pipe a, b;
    CPPUNIT_ASSERT_EQUAL(ssize_t{2}, rawSend(pair.raw, "AA", 2, rights({a.ends[1]})));
    CPPUNIT_ASSERT_EQUAL(ssize_t{2}, rawSend(pair.raw, "BB", 2, rights({b.ends[1], b.ends[1]})));
    char bytes[8] = {};
    int fds[8];
    std::size_t received = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, pair.socket.receiveDescriptors(bytes, sizeof bytes, fds, 8, received));
    CPPUNIT_ASSERT_EQUAL(std::string("AA"), std::string(bytes, 2));
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    assertWritesTo(fds[0], a);
    close(fds[0]);
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, pair.socket.receiveDescriptors(bytes, sizeof bytes, fds, 8, received));
    CPPUNIT_ASSERT_EQUAL(std::string("BB"), std::string(bytes, 2));
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, received);
    assertWritesTo(fds[1], b);
    closeAll(fds, 2);
  }

  // The kernel truncates the control message (MSG_CTRUNC) when the
  // receiver is at its descriptor limit: what it did install is closed,
  // the call says message_size, and the next message comes through.
  void testTruncatedControlClosesWhatArrived() {
    HostilePair pair;
    Pipe pipe;
    std::vector<int> many(40, pipe.ends[1]);
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, rawSend(pair.raw, "L", 1, rights(many)));
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, rawSend(pair.raw, "M", 1, rights({pipe.ends[1]})));
    pipe.closeWriteEnd();
    char byte = 0;
    int fds[64];
    std::size_t received = 9;
    std::error_code ec;
    {
      const LowDescriptorLimit limit(3);  // three of the forty fit
      pair.socket.receiveDescriptors(&byte, 1, fds, 64, received, ec);
    }
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.socket.receiveDescriptors(&byte, 1, fds, 64, received));
    CPPUNIT_ASSERT_EQUAL('M', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    close(fds[0]);
    CPPUNIT_ASSERT(pipe.everyWriterClosed());
  }

  // The same truncation through a DescriptorReceiveEvent on every backend
  // this host has: message_size, nothing delivered, nothing kept.
  void testReceiveEventTruncatedOnEveryBackend() {
    int backends = 0;
    for (std::unique_ptr<EventChannel>& channel : oneWorkerChannelOnEveryBackend()) {
      std::error_code ec;
      ++backends;
      HostilePair pair;
      Pipe pipe;
      CPPUNIT_ASSERT_EQUAL(ssize_t{1}, rawSend(pair.raw, "E", 1, rights(std::vector<int>(20, pipe.ends[1]))));
      pipe.closeWriteEnd();
      char byte = 0;
      int fds[32];
      evchan::DescriptorReceiveEvent receive(pair.socket, &byte, 1, fds, 32);
      {
        const LowDescriptorLimit limit(2);
        channel->post(receive);
        CPPUNIT_ASSERT(&nextEvent(*channel) == &receive);
      }
      CPPUNIT_ASSERT_MESSAGE(channel->backendName(), receive.error() == std::errc::message_size);
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.descriptorsReceived());
      CPPUNIT_ASSERT_EQUAL('E', byte);
      CPPUNIT_ASSERT_MESSAGE(channel->backendName(), pipe.everyWriterClosed());
    }
    CPPUNIT_ASSERT(backends >= 2);
  }

  // The peer sends bytes with descriptors and closes at once: they still
  // arrive, then the end of the stream.
  void testPeerClosesAfterSendingDescriptors() {
    HostilePair pair;
    Pipe pipe;
    CPPUNIT_ASSERT_EQUAL(ssize_t{3}, rawSend(pair.raw, "bye", 3, rights({pipe.ends[1]})));
    pair.closeRaw();
    char bytes[8];
    int fd = -1;
    std::size_t received = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, pair.socket.receiveDescriptors(bytes, sizeof bytes, &fd, 1, received));
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, received);
    close(fd);
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.socket.receiveDescriptors(bytes, sizeof bytes, &fd, 1, received, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, received);
  }

  // The receiver waits (on a thread, and in a task) and the peer hangs up
  // without sending: end_of_stream, not a hang.
  void testPeerClosesWhileReceiverWaits() {
    {
      HostilePair pair;
      std::error_code ec;
      std::thread closer([&] {
        std::this_thread::sleep_for(20ms);
        pair.closeRaw();
      });
      char byte;
      int fd = -1;
      std::size_t received = 0;
      pair.socket.receiveDescriptors(&byte, 1, &fd, 1, received, ec);
      closer.join();
      ASSERT_ERROR(Errc::end_of_stream, ec);
    }
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    HostilePair pair;
    std::error_code ec;
    evchan::TaskHandle task = channel->spawn([&] {
      char byte;
      int fd = -1;
      std::size_t received = 0;
      pair.socket.receiveDescriptors(&byte, 1, &fd, 1, received, ec);
    });
    std::this_thread::sleep_for(20ms);
    pair.closeRaw();
    task.join();
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  // --- UDP ------------------------------------------------------------------

  // A connected socket only hears its peer: an intruder's datagram sent
  // first is never delivered (on a thread and in a task).
  void testConnectedUdpIgnoresOtherSenders() {
    UdpSocket socket = boundUdp();
    UdpSocket peer = boundUdp();
    UdpSocket intruder = boundUdp();
    socket.connect(peer.localAddress());
    intruder.sendTo("intruder", 8, socket.localAddress());
    peer.sendTo("peer", 4, socket.localAddress());
    char buffer[64];
    Address from;
    std::size_t n = socket.receiveFrom(buffer, sizeof buffer, from);
    CPPUNIT_ASSERT_EQUAL(std::string("peer"), std::string(buffer, n));
    CPPUNIT_ASSERT(from == peer.localAddress());
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::string got;
    evchan::TaskHandle task = channel->spawn([&] {
      char inside[64];
      got.assign(inside, socket.receive(inside, sizeof inside));
    });
    intruder.sendTo("again", 5, socket.localAddress());
    peer.sendTo("peer2", 5, socket.localAddress());
    task.join();
    CPPUNIT_ASSERT_EQUAL(std::string("peer2"), got);
    std::error_code ec;
    socket.setTimeout(0s);
    socket.receive(buffer, sizeof buffer, ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
  }

  // An empty datagram is one (0 bytes, no error); the largest IPv4
  // datagram comes through whole; one byte more fails with message_size.
  void testEmptyAndLargestDatagrams() {
    UdpSocket a = boundUdp();
    UdpSocket b = boundUdp();
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, a.sendTo("", 0, b.localAddress()));
    std::vector<char> big(65507), in(65600);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 13);
    CPPUNIT_ASSERT_EQUAL(big.size(), a.sendTo(big.data(), big.size(), b.localAddress()));
    Address from;
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, b.receiveFrom(in.data(), in.size(), from, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT(from == a.localAddress());
    CPPUNIT_ASSERT_EQUAL(big.size(), b.receiveFrom(in.data(), in.size(), from, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT(std::equal(big.begin(), big.end(), in.begin()));
    big.push_back('x');
    a.sendTo(big.data(), big.size(), b.localAddress(), ec);
    ASSERT_ERROR(std::errc::message_size, ec);
  }

  // A zero-size buffer (null too) on a thread: a non-empty datagram is
  // consumed with message_size and its sender; an empty one is a success.
  void testZeroSizeReceiveBuffer() {
    UdpSocket a = boundUdp();
    UdpSocket b = boundUdp();
    a.sendTo("abc", 3, b.localAddress());
    a.sendTo("", 0, b.localAddress());
    a.sendTo("z", 1, b.localAddress());
    Address from;
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, b.receiveFrom(nullptr, 0, from, ec));
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT(from == a.localAddress());
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, b.receiveFrom(nullptr, 0, from, ec));
    ASSERT_NO_ERROR(ec);
    char byte = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, b.receiveFrom(&byte, 1, from, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL('z', byte);
  }

  // The same in a task and through a DatagramReceiveEvent, on every
  // backend this host has: the same answers as on a thread.
  void testZeroSizeReceiveInTask() {
    int backends = 0;
    for (std::unique_ptr<EventChannel>& channel : oneWorkerChannelOnEveryBackend()) {
      ++backends;
      const std::string name = channel->backendName();
      UdpSocket a = boundUdp();
      UdpSocket b = boundUdp();
      std::error_code first, second;
      Address from;
      std::size_t n1 = 9, n2 = 9;
      evchan::TaskHandle task = channel->spawn([&] {
        n1 = b.receiveFrom(nullptr, 0, from, first);
        n2 = b.receiveFrom(nullptr, 0, from, second);
      });
      a.sendTo("abc", 3, b.localAddress());
      a.sendTo("", 0, b.localAddress());
      task.join();
      CPPUNIT_ASSERT_MESSAGE(name + ": " + first.message(), first == std::errc::message_size);
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, n1);
      CPPUNIT_ASSERT_MESSAGE(name + ": " + second.message(), !second);
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, n2);
      CPPUNIT_ASSERT_MESSAGE(name, from == a.localAddress());
      evchan::DatagramReceiveEvent receive(b, nullptr, 0);
      channel->post(receive);
      a.sendTo("de", 2, b.localAddress());
      CPPUNIT_ASSERT(&nextEvent(*channel) == &receive);
      CPPUNIT_ASSERT_MESSAGE(name + ": " + receive.error().message(), receive.error() == std::errc::message_size);
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, receive.bytesTransferred());
      CPPUNIT_ASSERT_MESSAGE(name, receive.peer() == a.localAddress());
    }
    CPPUNIT_ASSERT(backends >= 2);
  }

  // Three threads wait in receive() on one socket (as the header allows);
  // close() from a fourth ends all three, each with operation_canceled or
  // not_open.
  void testUdpCloseEndsReceiversOnThreads() {
    for (int round = 0; round < 20; ++round) {
      UdpSocket socket = boundUdp();
      std::atomic<int> ended{0};
      std::vector<std::error_code> errors(3);
      std::vector<std::thread> receivers;
      for (int i = 0; i < 3; ++i) {
        receivers.emplace_back([&, i] {
          char buffer[16];
          socket.receive(buffer, sizeof buffer, errors[i]);
          ++ended;
        });
      }
      if (round % 2 == 0) std::this_thread::sleep_for(5ms);
      socket.close();
      for (std::thread& t : receivers) t.join();
      CPPUNIT_ASSERT_EQUAL(3, ended.load());
      for (const std::error_code& ec : errors)
        CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::operation_canceled || ec == Errc::not_open);
    }
  }

  // A task waits in receive(); cancel() from a plain thread ends it with
  // operation_canceled and the socket still works; close() ends the next
  // wait the same way.
  void testUdpCloseAndCancelEndReceiveInTask() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    for (int round = 0; round < 20; ++round) {
      UdpSocket socket = boundUdp();
      UdpSocket peer = boundUdp();
      std::atomic<bool> waiting{false}, cancelled{false}, answered{false};
      std::error_code first, second, third;
      std::string got;
      evchan::TaskHandle task = channel->spawn([&] {
        char buffer[16];
        waiting = true;
        socket.receive(buffer, sizeof buffer, first);
        cancelled = true;
        std::size_t n = 0;
        do {  // a cancel() the test sent before it saw `cancelled` may land here
          n = socket.receive(buffer, sizeof buffer, second);
        } while (second == std::errc::operation_canceled);
        got.assign(buffer, n);
        answered = true;
        socket.receive(buffer, sizeof buffer, third);
      });
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return waiting.load(); }));
      // cancel() until the first receive is over: a cancel() before the
      // receive started waiting does not count.
      CPPUNIT_ASSERT(evchan::test::eventually([&] {
        socket.cancel();
        return cancelled.load();
      }));
      peer.sendTo("ok", 2, socket.localAddress());
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return answered.load(); }));
      socket.close();
      task.join();
      ASSERT_ERROR(std::errc::operation_canceled, first);
      ASSERT_NO_ERROR(second);
      CPPUNIT_ASSERT_EQUAL(std::string("ok"), got);
      CPPUNIT_ASSERT_MESSAGE(third.message(), third == std::errc::operation_canceled || third == Errc::not_open);
    }
  }

  // Eight threads send on one socket at once (the kernel's sendto() is
  // atomic per datagram): every send succeeds whole, and every datagram
  // that arrives is one sender's, intact.
  void testManyThreadsSendOnOneUdpSocket() {
    UdpSocket sender = boundUdp();
    UdpSocket receiver = boundUdp();
    receiver.setTimeout(200ms);
    constexpr int kThreads = 8, kEach = 200;
    std::atomic<int> failures{0};
    std::atomic<bool> sending{true};
    int received = 0;
    bool intact = true;
    std::thread drain([&] {
      char buffer[256];
      for (;;) {
        std::error_code ec;
        const std::size_t n = receiver.receive(buffer, sizeof buffer, ec);
        if (ec == std::errc::timed_out && !sending) break;
        if (ec) continue;
        ++received;
        // Each datagram is 100 copies of one letter.
        if (n != 100 || std::count(buffer, buffer + n, buffer[0]) != 100) intact = false;
      }
    });
    std::vector<std::thread> senders;
    for (int t = 0; t < kThreads; ++t) {
      senders.emplace_back([&, t] {
        const std::string datagram(100, static_cast<char>('a' + t));
        for (int i = 0; i < kEach; ++i) {
          std::error_code ec;
          if (sender.sendTo(datagram.data(), datagram.size(), receiver.localAddress(), ec) != 100 || ec) ++failures;
        }
      });
    }
    for (std::thread& t : senders) t.join();
    sending = false;
    drain.join();
    CPPUNIT_ASSERT_EQUAL(0, failures.load());
    CPPUNIT_ASSERT(intact);
    CPPUNIT_ASSERT(received > 0 && received <= kThreads * kEach);
  }

  // docs/udp.md's reply pattern, sendTo(from) after receiveFrom(), on a
  // dual-stack IPv6 socket whose sender is IPv4 (so `from` reads as
  // IPv4): on a thread, in a task and as events on every backend.
  void testDualStackAnswersAnIPv4Sender() {
    std::error_code ec;
    UdpSocket server = UdpSocket::open(AddressFamily::IPv6, ec);
    if (ec) return;  // no IPv6 here
    server.bind(Address::fromNumeric("::", 0, AddressFamily::IPv6), ec);
    if (ec) return;
    server.setTimeout(kPatience);
    UdpSocket client = boundUdp();
    const Address serverV4 = loopback(server.localAddress().port());
    char buffer[16];
    Address from;
    client.sendTo("q1", 2, serverV4);
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, server.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT(from == client.localAddress());
    server.sendTo("a1", 2, from, ec);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, client.receive(buffer, sizeof buffer));
    for (std::unique_ptr<EventChannel>& channel : oneWorkerChannelOnEveryBackend()) {
      const std::string name = channel->backendName();
      std::error_code inTask;
      evchan::TaskHandle task = channel->spawn([&] {
        char inside[16];
        Address sender;
        server.receiveFrom(inside, sizeof inside, sender, inTask);
        if (!inTask) server.sendTo(inside, 2, sender, inTask);
      });
      client.sendTo("q2", 2, serverV4);
      task.join();
      CPPUNIT_ASSERT_MESSAGE(name + ": " + inTask.message(), !inTask);
      CPPUNIT_ASSERT_EQUAL(std::size_t{2}, client.receive(buffer, sizeof buffer));
      evchan::DatagramReceiveEvent receive(server, buffer, sizeof buffer);
      channel->post(receive);
      client.sendTo("q3", 2, serverV4);
      CPPUNIT_ASSERT(&nextEvent(*channel) == &receive);
      ASSERT_NO_ERROR(receive.error());
      evchan::DatagramSendEvent answer(server, "a3", 2, receive.peer());
      channel->post(answer);
      CPPUNIT_ASSERT(&nextEvent(*channel) == &answer);
      CPPUNIT_ASSERT_MESSAGE(name + ": " + answer.error().message(), !answer.error());
      CPPUNIT_ASSERT_EQUAL(std::size_t{2}, client.receive(buffer, sizeof buffer));
    }
  }

  // A connected socket whose peer port is closed: the ICMP "port
  // unreachable" fails the next receive with connection_refused, on a
  // thread, in a task and as an event on every backend; none of them
  // waits for a datagram that will never come (timed_out would say so).
  void testRefusedPeerEndsEveryReceive() {
    Address closedPort;
    {
      UdpSocket gone = boundUdp();
      closedPort = gone.localAddress();
    }
    UdpSocket socket = boundUdp();
    socket.setTimeout(generousSeconds(5));
    socket.connect(closedPort);
    char buffer[8];
    std::error_code ec;
    socket.send("x", 1);
    socket.receive(buffer, sizeof buffer, ec);
    CPPUNIT_ASSERT_MESSAGE("thread: " + ec.message(), ec == std::errc::connection_refused);
    for (std::unique_ptr<EventChannel>& channel : oneWorkerChannelOnEveryBackend()) {
      const std::string name = channel->backendName();
      std::error_code inTask;
      evchan::TaskHandle task = channel->spawn([&] {
        char inside[8];
        socket.send("y", 1);
        // Let the ICMP answer come back while the task is not receiving.
        evchan::this_task::sleepFor(20ms);
        socket.receive(inside, sizeof inside, inTask);
      });
      task.join();
      CPPUNIT_ASSERT_MESSAGE(name + " task: " + inTask.message(), inTask == std::errc::connection_refused);
      // The task's receive waits first, the answer comes while it does.
      task = channel->spawn([&] {
        char inside[8];
        socket.receive(inside, sizeof inside, inTask);
      });
      std::this_thread::sleep_for(20ms);
      socket.send("z", 1);
      task.join();
      CPPUNIT_ASSERT_MESSAGE(name + " waiting task: " + inTask.message(), inTask == std::errc::connection_refused);
      evchan::DatagramReceiveEvent receive(socket, buffer, sizeof buffer);
      channel->post(receive);
      socket.send("w", 1);
      CPPUNIT_ASSERT(&nextEvent(*channel) == &receive);
      CPPUNIT_ASSERT_MESSAGE(name + " event: " + receive.error().message(),
                             receive.error() == std::errc::connection_refused);
    }
  }

  // --- EventChannel misuse --------------------------------------------------

  // post() of an event in flight is refused on its channel and on another,
  // and leaves the first posting alone: it comes back once.
  void testPostingAnEventInFlightIsRefused() {
    std::unique_ptr<EventChannel> one = evchan::test::makeChannel(1);
    std::unique_ptr<EventChannel> two = evchan::test::makeChannel(1);
    evchan::TimerEvent timer(1h);
    one->post(timer);
    std::error_code ec;
    one->post(timer, ec);
    ASSERT_ERROR(Errc::already_in_flight, ec);
    two->post(timer, ec);
    ASSERT_ERROR(Errc::already_in_flight, ec);
    CPPUNIT_ASSERT(timer.inFlight());
    CPPUNIT_ASSERT(!two->cancel(timer));
    CPPUNIT_ASSERT(one->cancel(timer));
    CPPUNIT_ASSERT(&nextEvent(*one) == &timer);
    ASSERT_ERROR(std::errc::operation_canceled, timer.error());
    CPPUNIT_ASSERT(one->getEvent(0ms) == nullptr);
    CPPUNIT_ASSERT(two->getEvent(0ms) == nullptr);
    // A read in flight posted again, from many threads at once: exactly
    // one of the posts (the first) holds it.
    HostilePair pair;
    char buffer[4];
    evchan::ReadEvent read(pair.socket, buffer, sizeof buffer);
    one->post(read);
    std::atomic<int> refused{0};
    std::vector<std::thread> posters;
    for (int i = 0; i < 4; ++i) {
      posters.emplace_back([&] {
        for (int j = 0; j < 100; ++j) {
          std::error_code again;
          (j % 2 ? *one : *two).post(read, again);
          if (again == Errc::already_in_flight) ++refused;
        }
      });
    }
    for (std::thread& t : posters) t.join();
    CPPUNIT_ASSERT_EQUAL(400, refused.load());
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, write(pair.raw, "r", 1));
    CPPUNIT_ASSERT(&nextEvent(*one) == &read);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, read.bytesTransferred());
    CPPUNIT_ASSERT(one->getEvent(0ms) == nullptr);
    CPPUNIT_ASSERT(two->getEvent(0ms) == nullptr);
  }

  // cancel() of one waiting event from four threads at once, on every
  // backend: exactly one of them returns true, and the event comes back
  // exactly once.  Timers and reads alike.
  void testCancelFromManyThreadsAtOnce() {
    std::vector<std::string> failures;
    for (std::unique_ptr<EventChannel>& channel : oneWorkerChannelOnEveryBackend()) {
      std::error_code ec;
      const std::string name = channel->backendName();
      HostilePair pair;
      char buffer[4];
      evchan::ReadEvent read(pair.socket, buffer, sizeof buffer);
      evchan::TimerEvent timer(1h);
      for (int round = 0; round < 40; ++round) {
        Event& event = round % 2 ? static_cast<Event&>(read) : static_cast<Event&>(timer);
        channel->post(event);
        std::atomic<int> trues{0};
        std::atomic<bool> go{false};
        std::vector<std::thread> cancellers;
        for (int t = 0; t < 4; ++t) {
          cancellers.emplace_back([&] {
            while (!go) std::this_thread::yield();
            if (channel->cancel(event)) ++trues;
          });
        }
        go = true;
        for (std::thread& t : cancellers) t.join();
        // Checked once the event is back: an assertion that threw with the
        // event in flight would abort the run in ~Event.
        if (trues == 0) channel->cancel(event);
        Event* first = channel->getEvent(kPatience);
        Event* second = channel->getEvent(0ms);
        if (trues != 1 || first != &event || second != nullptr || event.error() != std::errc::operation_canceled)
          failures.push_back(name + (round % 2 ? " read" : " timer") + ": " + std::to_string(trues.load()) +
                             " cancel() calls returned true, " + (first == &event ? "came back" : "did not come back") +
                             (second != nullptr ? ", and again" : "") + ", " + event.error().message());
        if (first != &event) break;
      }
    }
    std::string all;
    for (const std::string& failure : failures) all += failure + "; ";
    CPPUNIT_ASSERT_MESSAGE(all, failures.empty());
  }

  // cancel() of a waiting AcceptEvent while another thread connects and
  // resets (SO_LINGER 0) connections to the listener in a loop, round
  // after round on every backend: the event comes back once, either with
  // a connection or cancelled, never with another error and never left
  // pending.  The completion backends accept again after an accept that
  // failed ECONNABORTED (a connection reset in the queue, on Windows); a
  // cancel() under way then must end the event, not the lost operation.
  // Linux hands a reset connection to accept() like any other, so here
  // the cancellations race real resets without that error.
  void testCancelledAcceptAmidResetConnections() {
    std::vector<std::string> failures;
    std::vector<std::string> ran;
    for (std::unique_ptr<EventChannel>& channel : oneWorkerChannelOnEveryBackend()) {
      const std::string name = channel->backendName();
      ran.push_back(name);
      evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0});
      listener.setTimeout(evchan::Duration::zero());
      sockaddr_in target = {};
      target.sin_family = AF_INET;
      target.sin_port = htons(static_cast<std::uint16_t>(listener.localAddress().port()));
      target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      // The resetter connects and resets as many connections as the rounds
      // ask for (a few each), racing each round's post() and cancel(); the
      // accept queue stays short, so no connect() waits out a dropped SYN.
      std::atomic<bool> resetting{true};
      std::atomic<int> requested{0}, made{0}, resets{0};
      std::thread resetter([&] {
        while (resetting) {
          if (made.load() == requested.load()) {
            std::this_thread::yield();
            continue;
          }
          const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&target), sizeof target) == 0) {
            const linger abort{1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
            ++resets;
          }
          if (fd >= 0) close(fd);
          ++made;
        }
      });
      evchan::AcceptEvent accept(listener);
      const evchan::test::ReclaimOnExit reclaim(*channel);  // an accept left pending comes back at the end
      int cancelled = 0, accepted = 0;
      for (int round = 0; round < 300 && failures.empty(); ++round) {
        // Take what earlier rounds queued, once their resets are all made.
        if (!evchan::test::eventually([&] { return made.load() == requested.load(); })) {
          failures.push_back(name + ": the resetter is stuck");
          break;
        }
        std::error_code drained;
        while (!drained) listener.accept(drained).close();
        // Every fourth round asks for none: the accept finds the queue
        // empty and waits, to be cancelled, on every backend.
        if (round % 4 != 0) requested += 16;
        std::error_code posted;
        channel->post(accept, posted);
        if (posted) {
          failures.push_back(name + ": post: " + posted.message());
          break;
        }
        // The cancel() lands amid the round's resets: after a few of them
        // (0 to 7), then a pause of up to a few microseconds.
        const int before = requested.load() - 16 + round % 8;
        while (round % 4 != 0 && made.load() < before) std::this_thread::yield();
        for (volatile int spin = 0; spin < (round % 41) * 50; spin = spin + 1) {
        }
        const bool wasWaiting = channel->cancel(accept);
        // Checked once the event is back: an assertion that threw with the
        // event in flight would abort the run in ~Event.
        Event* back = channel->getEvent(kPatience);
        if (back != &accept) {
          failures.push_back(name + " round " + std::to_string(round) + ": the accept did not come back (cancel() " +
                             (wasWaiting ? "true" : "false") + ")");
          break;
        }
        if (accept.error() == std::errc::operation_canceled) {
          if (!wasWaiting) failures.push_back(name + ": cancelled although cancel() returned false");
          ++cancelled;
        } else if (!accept.error()) {
          // Accepted first: cancel() found it completing (or, on io_uring,
          // the kernel finished it before the cancellation reached it).
          if (wasWaiting && name != "io_uring") failures.push_back(name + ": accepted after cancel() returned true");
          if (!accept.takeSocket().isOpen()) failures.push_back(name + ": accepted, but no socket");
          ++accepted;
        } else {
          failures.push_back(name + " round " + std::to_string(round) + ": " + accept.error().message());
        }
        if (channel->getEvent(0ms) != nullptr) failures.push_back(name + ": an event came back twice");
      }
      resetting = false;
      resetter.join();
      if (resets.load() == 0) failures.push_back(name + ": no connection was reset");
      if (cancelled == 0) failures.push_back(name + ": no round ended cancelled");
      std::printf("cancelled accept amid resets (%s): %d cancelled, %d accepted, %d resets\n", name.c_str(), cancelled,
                  accepted, resets.load());
    }
    std::string all;
    for (const std::string& failure : failures) all += failure + "; ";
    CPPUNIT_ASSERT_MESSAGE(all, failures.empty());
    if (std::find(ran.begin(), ran.end(), "io_uring") == ran.end()) {
      EVCHAN_SKIP("io_uring unavailable here (the other backends passed)");
    }
  }

  // Destroying an event in flight is the programming error event.h names:
  // the process aborts with a message (in a child process here), it does
  // not go on to use freed memory.
  void testDestroyingAnEventInFlightAborts() {
#ifdef EVCHAN_TEST_TSAN
    EVCHAN_SKIP("ThreadSanitizer cannot start threads in a child forked from a threaded process");
#endif
    int output[2];
    CPPUNIT_ASSERT_EQUAL(0, pipe2(output, O_CLOEXEC));
    const pid_t child = fork();
    CPPUNIT_ASSERT(child >= 0);
    if (child == 0) {
      dup2(output[1], STDERR_FILENO);
      alarm(20);
      std::unique_ptr<EventChannel> channel = EventChannel::create();
      auto timer = std::make_unique<evchan::TimerEvent>(1h);
      channel->post(*timer);
      timer.reset();
      _exit(0);
    }
    close(output[1]);
    std::string message;
    char buffer[256];
    for (ssize_t n; (n = read(output[0], buffer, sizeof buffer)) > 0;) message.append(buffer, n);
    close(output[0]);
    int status = 0;
    CPPUNIT_ASSERT_EQUAL(child, waitpid(child, &status, 0));
    CPPUNIT_ASSERT_MESSAGE(message, WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CPPUNIT_ASSERT_MESSAGE(message, message.find("destroyed while in flight") != std::string::npos);
  }

  // shutdown() from two threads at once while three threads wait in
  // getEvent(): both return with the pool joined, each pending event comes
  // back once (to a consumer, or held and destroyed afterwards), and the
  // consumers end with nullptr.
  void testShutdownFromTwoThreadsWithConsumers() {
    for (int round = 0; round < 30; ++round) {
      std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
      std::vector<std::unique_ptr<evchan::TimerEvent>> timers;
      for (int i = 0; i < 50; ++i) {
        timers.push_back(std::make_unique<evchan::TimerEvent>(i % 2 ? 1h : 0ms));
        channel->post(*timers.back());
      }
      std::vector<std::vector<Event*>> taken(3);
      std::vector<std::thread> consumers;
      for (int c = 0; c < 3; ++c) {
        consumers.emplace_back([&, c] {
          while (Event* event = channel->getEvent(kPatience)) taken[c].push_back(event);
        });
      }
      std::atomic<int> returned{0};
      std::thread a([&] {
        channel->shutdown();
        ++returned;
      });
      std::thread b([&] {
        channel->shutdown();
        ++returned;
      });
      a.join();
      b.join();
      for (std::thread& t : consumers) t.join();
      CPPUNIT_ASSERT_EQUAL(2, returned.load());
      CPPUNIT_ASSERT(channel->isShutDown());
      CPPUNIT_ASSERT_EQUAL(0, channel->poolStats().current);
      std::vector<Event*> all;
      for (const std::vector<Event*>& some : taken) all.insert(all.end(), some.begin(), some.end());
      std::sort(all.begin(), all.end());
      CPPUNIT_ASSERT_MESSAGE("an event came back twice", std::adjacent_find(all.begin(), all.end()) == all.end());
      CPPUNIT_ASSERT(all.size() <= timers.size());
      for (Event* event : all) CPPUNIT_ASSERT(!event->inFlight());
      timers.clear();  // those not taken are held: destroying them is allowed now
      CPPUNIT_ASSERT(channel->getEvent(0ms) == nullptr);
    }
  }

  // shutdown() from inside a callback while another thread calls it too
  // and a third posts: the outside call returns with every callback run.
  void testShutdownFromCallbackAndOutside() {
    for (int round = 0; round < 30; ++round) {
      std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
      std::atomic<int> ran{0};
      std::vector<std::unique_ptr<evchan::DispatchEvent>> work;
      for (int i = 0; i < 20; ++i) {
        work.push_back(std::make_unique<evchan::DispatchEvent>([&] { ++ran; }));
        work.back()->setCallback([&](Event&) {});
      }
      evchan::DispatchEvent stopper([&] { channel->shutdown(); });
      channel->post(stopper);
      std::vector<bool> accepted;
      std::thread outside([&] { channel->shutdown(); });
      for (auto& event : work) {
        std::error_code ec;
        channel->post(*event, ec);
        accepted.push_back(!ec);
        if (ec) ASSERT_ERROR(Errc::channel_shut_down, ec);
      }
      outside.join();
      channel->shutdown();
      CPPUNIT_ASSERT(channel->isShutDown());
      for (auto& event : work) CPPUNIT_ASSERT(!event->inFlight());
      // A DispatchEvent whose function never ran completes cancelled; one
      // that ran completes without an error.
      int succeeded = 0;
      for (std::size_t i = 0; i < work.size(); ++i)
        if (accepted[i] && !work[i]->error()) ++succeeded;
      CPPUNIT_ASSERT_EQUAL(succeeded, ran.load());
      work.clear();
    }
  }

  // post() racing shutdown() from several threads: each post either is
  // refused with channel_shut_down or its event comes back exactly once
  // by the time shutdown() has returned (callbacks run, the rest held).
  void testPostRacingShutdown() {
    for (int round = 0; round < 30; ++round) {
      std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
      constexpr int kPosters = 3, kEach = 40;
      std::vector<std::vector<std::unique_ptr<Event>>> events(kPosters);
      std::vector<std::atomic<int>> callbacks(kPosters);
      std::vector<int> accepted(kPosters, 0);
      std::vector<std::thread> posters;
      for (int p = 0; p < kPosters; ++p) {
        posters.emplace_back([&, p] {
          for (int i = 0; i < kEach; ++i) {
            std::unique_ptr<Event> event;
            switch (i % 3) {
              case 0: event = std::make_unique<evchan::TimerEvent>(i % 2 ? 0ms : 1h); break;
              case 1: event = std::make_unique<evchan::DispatchEvent>([] {}); break;
              default: event = std::make_unique<evchan::TimerEvent>(1ms); break;
            }
            event->setCallback([&callbacks, p](Event&) { ++callbacks[p]; });
            std::error_code ec;
            channel->post(*event, ec);
            if (!ec) {
              ++accepted[p];
            } else if (ec != Errc::channel_shut_down) {
              ++accepted[p];  // counted as a failure below
              callbacks[p] -= 1000;
            }
            events[p].push_back(std::move(event));
          }
        });
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200 * (round % 5)));
      channel->shutdown();
      for (std::thread& t : posters) t.join();
      channel->shutdown();
      for (int p = 0; p < kPosters; ++p) {
        CPPUNIT_ASSERT_EQUAL(accepted[p], callbacks[p].load());
        for (auto& event : events[p]) CPPUNIT_ASSERT(!event->inFlight());
      }
    }
  }

  // Callbacks that re-post their event with the throwing post(), as
  // docs/event-channel.md's example does, while the channel shuts down:
  // the refused post throws on a worker, which must neither crash nor
  // lose the event (each ends out of flight).
  void testCallbacksRepostingThroughShutdown() {
    for (int round = 0; round < 20; ++round) {
      std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
      std::vector<std::unique_ptr<evchan::TimerEvent>> timers;
      std::atomic<int> runs{0};
      for (int i = 0; i < 8; ++i) {
        timers.push_back(std::make_unique<evchan::TimerEvent>(i % 2 ? 0ms : 1ms));
        evchan::TimerEvent* timer = timers.back().get();
        EventChannel* raw = channel.get();
        timer->setCallback([timer, raw, &runs](Event&) {
          ++runs;
          raw->post(*timer);  // throws channel_shut_down once it is shut down
        });
        channel->post(*timer);
      }
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return runs.load() > 100; }));
      channel->shutdown();
      for (auto& timer : timers) CPPUNIT_ASSERT(!timer->inFlight());
      channel.reset();
      timers.clear();
    }
  }

  // The channel destroyed (no shutdown() first) while threads wait in
  // getEvent(): ~EventChannel allows it; each wakes with nullptr, touching
  // nothing freed.  (The pending timer has a callback: nothing is there
  // for getEvent() to hand out; see testDestroyWakesConsumersWithNullptr.)
  void testDestroyedWhileConsumersWait() {
    for (int round = 0; round < 20; ++round) {
      std::atomic<int> called{0};
      evchan::TimerEvent pending(1h);
      pending.setCallback([&called](Event&) { ++called; });
      std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
      EventChannel* raw = channel.get();
      std::vector<Event*> got(3, &pending);
      std::vector<std::thread> consumers;
      for (int c = 0; c < 3; ++c) consumers.emplace_back([&, raw, c] { got[c] = raw->getEvent(); });
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return channel->poolStats().inGetEvent == 3; }));
      channel->post(pending);
      channel.reset();
      for (std::thread& t : consumers) t.join();
      for (Event* event : got) CPPUNIT_ASSERT(event == nullptr);
      CPPUNIT_ASSERT_EQUAL(1, called.load());
      CPPUNIT_ASSERT(!pending.inFlight());
    }
  }

  // ~EventChannel says threads blocked in getEvent() while it runs "wake
  // up with nullptr", which makes the usual consumer loop
  // (while (Event* e = channel->getEvent()) ...) safe against it.  But its
  // shutdown first completes the pending events, cancelled, into the
  // queue those threads take from, and a thread may take one: its loop
  // then calls getEvent() on the destroyed channel (ASan: heap-use-after-
  // free in EventChannel::getEvent).  Before the fix 57-58 of the 60
  // blocked calls returned an event.
  void testDestroyWakesConsumersWithNullptr() {
    int handedOut = 0;
    for (int round = 0; round < 20; ++round) {
      std::vector<std::unique_ptr<evchan::TimerEvent>> timers;
      for (int i = 0; i < 20; ++i) timers.push_back(std::make_unique<evchan::TimerEvent>(1h));
      std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
      EventChannel* raw = channel.get();
      std::vector<Event*> got(3, nullptr);
      std::vector<std::thread> consumers;
      for (int c = 0; c < 3; ++c) consumers.emplace_back([&, raw, c] { got[c] = raw->getEvent(); });
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return channel->poolStats().inGetEvent == 3; }));
      for (auto& timer : timers) channel->post(*timer);
      channel.reset();
      for (std::thread& t : consumers) t.join();
      for (Event* event : got)
        if (event != nullptr) ++handedOut;
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE("getEvent() calls blocked during ~EventChannel that returned an event, not nullptr", 0,
                                 handedOut);
  }

  // The channel destroyed from one of its own callbacks while outside
  // threads wait in getEvent() and a task is parked: the destructor
  // returns at once, the waiters wake with nullptr, and the workers free
  // everything (its descriptors too) once they are done.
  void testDestroyedFromItsOwnCallback() {
    const int before = evchan::test::openDescriptorCount();
    for (int round = 0; round < 10; ++round) {
      EventChannel* channel = evchan::test::makeChannel(2).release();
      std::atomic<int> nulls{0};
      std::vector<std::thread> consumers;
      for (int c = 0; c < 2; ++c) {
        consumers.emplace_back([&, channel] {
          while (channel->getEvent() != nullptr) {
          }
          ++nulls;
        });
      }
      std::atomic<bool> unwound{false};
      channel->spawn([&unwound] {
        struct Flag {
          std::atomic<bool>* flag;
          ~Flag() { *flag = true; }
        } flag{&unwound};
        evchan::this_task::sleepFor(1h);
      });
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return channel->poolStats().inGetEvent == 2; }));
      evchan::DispatchEvent destroy([channel] { delete channel; });
      destroy.setCallback([](Event&) {});
      channel->post(destroy);
      for (std::thread& t : consumers) t.join();
      CPPUNIT_ASSERT_EQUAL(2, nulls.load());
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return unwound.load(); }));
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return !destroy.inFlight(); }));
    }
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return evchan::test::openDescriptorCount() == before; }));
  }

  // ReadEvents and WriteEvents with callbacks posted from several threads
  // while another shuts the channel down, on every backend: each post is
  // either refused (channel_shut_down, socket_busy for a second read of a
  // socket) or its callback has run by the time shutdown() returns.
  void testSocketPostsRacingShutdownOnEveryBackend() {
    for (evchan::Backend backend : {evchan::Backend::Epoll, evchan::Backend::Poll, evchan::Backend::Select,
                                    evchan::Backend::AprPollset, evchan::Backend::IoUring}) {
      for (int round = 0; round < 10; ++round) {
        EventChannel::Options options;
        options.backend = backend;
        options.initialThreads = 2;
        std::error_code ec;
        std::unique_ptr<EventChannel> channel = EventChannel::create(options, ec);
        if (!channel) break;
        const std::string name = channel->backendName();
        constexpr int kPosters = 3;
        std::vector<std::unique_ptr<HostilePair>> pairs;
        for (int p = 0; p < kPosters; ++p) pairs.push_back(std::make_unique<HostilePair>());
        std::vector<std::atomic<int>> callbacks(kPosters);
        std::vector<int> accepted(kPosters, 0), unexpected(kPosters, 0);
        std::vector<std::vector<std::unique_ptr<Event>>> events(kPosters);
        std::vector<std::array<char, 4>> buffers(kPosters * 64);
        std::vector<std::thread> posters;
        for (int p = 0; p < kPosters; ++p) {
          posters.emplace_back([&, p] {
            for (int i = 0; i < 60; ++i) {
              std::unique_ptr<Event> event;
              if (i % 2) {
                event = std::make_unique<evchan::ReadEvent>(pairs[p]->socket, buffers[p * 64 + i].data(), 4);
              } else {
                event = std::make_unique<evchan::WriteEvent>(pairs[p]->socket, "ab", 2);
                if (i % 8 == 0) write(pairs[p]->raw, "c", 1);
              }
              event->setCallback([&callbacks, p](Event&) { ++callbacks[p]; });
              std::error_code postError;
              channel->post(*event, postError);
              if (!postError) {
                ++accepted[p];
              } else if (postError != Errc::channel_shut_down && postError != Errc::socket_busy) {
                ++unexpected[p];
              }
              events[p].push_back(std::move(event));
            }
          });
        }
        std::this_thread::sleep_for(std::chrono::microseconds(300 * (round % 4)));
        channel->shutdown();
        for (std::thread& t : posters) t.join();
        channel->shutdown();
        for (int p = 0; p < kPosters; ++p) {
          CPPUNIT_ASSERT_EQUAL_MESSAGE(name, 0, unexpected[p]);
          CPPUNIT_ASSERT_EQUAL_MESSAGE(name, accepted[p], callbacks[p].load());
          for (auto& event : events[p]) CPPUNIT_ASSERT_MESSAGE(name, !event->inFlight());
        }
      }
    }
  }

 private:
  // Lowers RLIMIT_NOFILE so that only `room` more descriptors fit (the
  // lowest free numbers being dense), and restores it.
  class LowDescriptorLimit {
   public:
    explicit LowDescriptorLimit(int room) {
      CPPUNIT_ASSERT_EQUAL(0, getrlimit(RLIMIT_NOFILE, &saved_));
      int highest = 0;
      for (int fd = 0; fd < 4096; ++fd)
        if (fcntl(fd, F_GETFD) >= 0) highest = fd;
      // Fill the holes below the highest descriptor, so that the next
      // ones the kernel hands out are above it.
      for (int fd = 0; fd < highest; ++fd) {
        if (fcntl(fd, F_GETFD) < 0) {
          const int filler = open("/dev/null", O_RDONLY | O_CLOEXEC);
          CPPUNIT_ASSERT(filler >= 0);
          fillers_.push_back(filler);
        }
      }
      rlimit low = saved_;
      low.rlim_cur = static_cast<rlim_t>(highest + 1 + room);
      CPPUNIT_ASSERT_EQUAL(0, setrlimit(RLIMIT_NOFILE, &low));
    }
    ~LowDescriptorLimit() {
      setrlimit(RLIMIT_NOFILE, &saved_);
      for (int fd : fillers_) close(fd);
    }

   private:
    rlimit saved_{};
    std::vector<int> fillers_;
  };
};

CPPUNIT_TEST_SUITE_REGISTRATION(AdversarialIoTest);
