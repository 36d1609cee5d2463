// SPDX-License-Identifier: Apache-2.0
// ShmStream and ShmListener: transfers between real processes (this test
// binary re-executed in a peer mode), peers that die, peers that lie in
// the shared header, bad segments, timeouts, bad input, and tasks.
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>
#include <evchan/shm_stream.h>

#include "linux/shm_connection.h"
#include "linux/shm_segment.h"
#include "linux/unix_peer.h"
#include "posix/unix_socket.h"
#include "support/cancel_race.h"
#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/self_process.h"
#include "support/posix/shm_pair.h"
#include "support/skip.h"
#include "support/stream_feeder.h"
#include "support/stream_suite.h"
#include "support/ticker.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::Errc;
using evchan::EventChannel;
using evchan::ShmListener;
using evchan::ShmStream;
using evchan::TaskHandle;
using evchan::test::generous;
using evchan::test::Clock;
using evchan::test::describe;
using evchan::test::elapsedText;
using evchan::test::joinWithin;
using evchan::test::makeChannelWithoutMonitor;


// Sanitizers slow the byte-crunching loops several-fold; the big transfer
// shrinks under ThreadSanitizer (which instruments every copy) so that the
// suite stays fast.  ASan runs the full gibibyte.
#if defined(__SANITIZE_THREAD__)
constexpr std::uint64_t kBigTransfer = std::uint64_t{256} << 20;
#else
constexpr std::uint64_t kBigTransfer = std::uint64_t{1} << 30;
#endif
constexpr std::size_t kChunk = std::size_t{256} << 10;  // divides kBigTransfer
constexpr evchan::Duration kPatience = 10s;             // a failing test ends, it never hangs
// How long a listener waits for a client's hello (documented in shm_stream.h).
constexpr evchan::Duration kHelloPatience = 2s;

// ------------------------------------------------------------ data
// The stream's 64-bit words are splitmix64 of their index: cheap to make
// and to check, and any lost, repeated or moved word changes the checksum.
std::uint64_t wordAt(std::uint64_t index) {
  std::uint64_t z = index + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fillWords(std::vector<std::uint64_t>& chunk, std::uint64_t firstIndex) {
  for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = wordAt(firstIndex + i);
}

std::uint64_t checksumWords(std::uint64_t state, const std::vector<std::uint64_t>& chunk) {
  for (std::uint64_t word : chunk) {
    state ^= word;
    state = (state << 29 | state >> 35) * 0x100000001b3ull;
  }
  return state;
}

constexpr std::uint64_t kChecksumSeed = 0xcbf29ce484222325ull;

// A name no other test (or run) uses.
std::string uniqueName(const char* what) { return evchan::test::uniqueShmName("shm-test", what); }

// ------------------------------------------------------------ peer mode
// The test binary started with EVCHAN_SHM_TEST_PEER="mode name" runs that
// peer before main() and exits: a second, real process on the other end.
constexpr const char* kPeerVariable = "EVCHAN_SHM_TEST_PEER";

// The user and group a "nobody-" peer runs as (the usual "nobody").
constexpr uid_t kOtherUser = 65534;
constexpr gid_t kOtherGroup = 65534;

// Writes `size` bytes through writeView() and commit(), asking for rooms
// of varying size (1 byte to 64 KiB) and, in some rounds, committing only
// half of one (the rest is lent again).
bool writeAllInPlace(ShmStream& stream, const void* data, std::size_t size, std::error_code& ec) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::size_t ask = 1;
  while (size > 0) {
    const evchan::ShmRoom room = stream.writeView(std::min(size, ask), ec);
    if (ec) return false;
    const std::size_t n = room.size > 1 && ask % 3 == 0 ? room.size / 2 : room.size;
    std::memcpy(room.data, bytes, n);
    stream.commit(n, ec);
    if (ec) return false;
    bytes += n;
    size -= n;
    ask = ask * 7 % 65521 + 1;
  }
  return true;
}

// Reads `size` bytes through readView() and consume(), the same way.
bool readAllInPlace(ShmStream& stream, void* data, std::size_t size, std::error_code& ec) {
  auto* bytes = static_cast<unsigned char*>(data);
  std::size_t ask = 5;
  while (size > 0) {
    const evchan::ConstBuffer view = stream.readView(std::min(size, ask), ec);
    if (ec) return false;
    const std::size_t n = view.size > 1 && ask % 4 == 0 ? view.size / 2 : view.size;
    std::memcpy(bytes, view.data, n);
    stream.consume(n, ec);
    if (ec) return false;
    bytes += n;
    size -= n;
    ask = ask * 11 % 65519 + 1;
  }
  return true;
}

int runPeer(std::string mode, const std::string& name) {
  // "nobody-MODE": MODE as another user (the test runs as root to ask).
  if (mode.compare(0, 7, "nobody-") == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(kOtherGroup) != 0 || setuid(kOtherUser) != 0) {
      std::fprintf(stderr, "peer: cannot become uid %u: %s\n", unsigned{kOtherUser}, std::strerror(errno));
      return 2;
    }
    mode.erase(0, 7);
  }
  std::error_code ec;
  ShmStream stream = ShmStream::connect(name, kPatience, ec);
  if (mode == "refused") {
    // The listener hangs up before or after our hello got there.
    char byte;
    if (!ec) stream.setTimeout(kPatience, ec);
    if (!ec) stream.readSome(&byte, 1, ec);
    return ec == std::errc::broken_pipe || ec == std::errc::connection_reset ? 0 : 3;
  }
  if (ec) {
    std::fprintf(stderr, "peer: connect %s: %s\n", name.c_str(), ec.message().c_str());
    return 2;
  }
  stream.setTimeout(kPatience);
  std::vector<std::uint64_t> chunk(kChunk / sizeof(std::uint64_t));
  if (mode == "send-gib" || mode == "send-forever") {
    // The words, then (send-gib) their checksum as a trailer, then the end.
    std::uint64_t sum = kChecksumSeed;
    const bool forever = mode == "send-forever";
    for (std::uint64_t index = 0; forever || index * 8 < kBigTransfer; index += chunk.size()) {
      fillWords(chunk, index);
      sum = checksumWords(sum, chunk);
      stream.writeAll(chunk.data(), kChunk, ec);
      if (ec) return forever ? 0 : 3;
    }
    stream.writeAll(&sum, sizeof sum, ec);
    stream.close();
    return ec ? 3 : 0;
  }
  if (mode == "send-gib-in-place") {
    // As send-gib, written in place.
    std::uint64_t sum = kChecksumSeed;
    for (std::uint64_t index = 0; index * 8 < kBigTransfer; index += chunk.size()) {
      fillWords(chunk, index);
      sum = checksumWords(sum, chunk);
      if (!writeAllInPlace(stream, chunk.data(), kChunk, ec)) return 3;
    }
    if (!writeAllInPlace(stream, &sum, sizeof sum, ec)) return 3;
    stream.close();
    return 0;
  }
  if (mode == "sink") {
    while (stream.readSome(chunk.data(), kChunk, ec) > 0) {
    }
    return 0;
  }
  if (mode == "half-message") {
    // Half of a 200-byte message, then death: no close(), no destructors.
    stream.writeAll(chunk.data(), 100, ec);
    _exit(ec ? 3 : 0);
  }
  if (mode == "echo") {
    for (;;) {
      const std::size_t n = stream.readSome(chunk.data(), kChunk, ec);
      if (ec) return ec == Errc::end_of_stream ? 0 : 3;
      stream.writeAll(chunk.data(), n, ec);
      if (ec) return 3;
    }
  }
  std::fprintf(stderr, "peer: unknown mode %s\n", mode.c_str());
  return 2;
}

bool runPeerIfAsked() {
  const char* request = std::getenv(kPeerVariable);
  if (request == nullptr) return false;
  const std::string text = request;
  const std::size_t space = text.find(' ');
  const int status = runPeer(text.substr(0, space), space == std::string::npos ? "" : text.substr(space + 1));
  std::fflush(stderr);
  _exit(status);
}

const bool kIsPeer = runPeerIfAsked();

/// This binary re-executed as a peer process; killed and reaped at the end.
class PeerProcess {
 public:
  PeerProcess(const std::string& mode, const std::string& name)
      : process_(kPeerVariable, mode + " " + name, "ShmStreamTest::noSuchTest") {}

  void kill9() const { process_.kill9(); }

  /// The exit status once the process has ended (within kPatience).
  int exitStatus() { return process_.exitStatus(std::chrono::duration_cast<std::chrono::milliseconds>(kPatience)); }

 private:
  evchan::test::SelfProcess process_;
};

/// A listener, a peer process of `mode` that connects to it, and the
/// stream accepted from it; each waits at most kPatience.
struct PeerConnection {
  PeerConnection(const std::string& mode, const char* tag)
      : name(uniqueName(tag)), listener(listenWithPatience(name)), peer(mode, name), stream(listener.accept()) {
    stream.setTimeout(kPatience);
  }

  static ShmListener listenWithPatience(const std::string& name) {
    ShmListener listener = ShmListener::listen(name);
    listener.setTimeout(kPatience);
    return listener;
  }

  const std::string name;
  ShmListener listener;
  PeerProcess peer;
  ShmStream stream;
};

// ------------------------------------------------------------ raw clients
// A client that does the handshake by hand, to send what ShmStream never
// would.  Owns its descriptors.
struct RawClient {
  int control = -1;
  int spaceBell = -1;  // our end of the pair whose other end was passed
  evchan::detail::Segment segment;

  ~RawClient() {
    if (control >= 0) close(control);
    if (spaceBell >= 0) close(spaceBell);
    if (segment.fd >= 0) close(segment.fd);
    evchan::detail::unmapSegment(segment);
  }

  void connectTo(const std::string& name) {
    std::error_code ec;
    control = evchan::detail::connectUnix(name, evchan::detail::deadlineAfter(kPatience), ec);
    ASSERT_NO_ERROR(ec);
  }

  // Sends a hello with `memfd` and a fresh socketpair end.
  void sendHello(int memfd, std::uint64_t magic = evchan::detail::kHelloMagic) {
    int pair[2];
    CPPUNIT_ASSERT_EQUAL(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
    spaceBell = pair[0];
    const evchan::detail::ShmHello hello = {magic, evchan::detail::kSegmentVersion, 0};
    const int fds[2] = {memfd, pair[1]};
    ASSERT_NO_ERROR(evchan::detail::sendWithDescriptors(control, &hello, sizeof hello, fds, 2));
    close(pair[1]);
  }

  // Sends a hello with a valid segment and `bell` (not closed here) as the
  // space doorbell, whatever it is.
  void sendHelloWithBell(int bell) {
    std::error_code created;
    segment = evchan::detail::createSegment(4096, created);
    ASSERT_NO_ERROR(created);
    const evchan::detail::ShmHello hello = {evchan::detail::kHelloMagic, evchan::detail::kSegmentVersion, 0};
    const int fds[2] = {segment.fd, bell};
    const std::error_code ec = evchan::detail::sendWithDescriptors(control, &hello, sizeof hello, fds, 2);
    ASSERT_NO_ERROR(ec);
    close(segment.fd);
    segment.fd = -1;
  }

  // A well-formed connection whose segment the test then corrupts.
  void connectWellFormed(const std::string& name, std::size_t ringSize = 4096) {
    connectTo(name);
    std::error_code ec;
    segment = evchan::detail::createSegment(ringSize, ec);
    ASSERT_NO_ERROR(ec);
    sendHello(segment.fd);
    close(segment.fd);
    segment.fd = -1;
  }

  evchan::detail::RingIndices& toListener() { return segment.header->rings[0]; }
  evchan::detail::RingIndices& fromListener() { return segment.header->rings[1]; }
};

// One end of a socketpair that a child process made: the child keeps the
// other end, and lives until this object is destroyed.  A client passing
// it as its doorbell would hide its own death behind the child's life.
struct PairFromAnotherProcess {
  pid_t child = -1;
  int end = -1;
  int link = -1;  // closing it lets the child exit

  PairFromAnotherProcess() {
    int sockets[2];
    CPPUNIT_ASSERT_EQUAL(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets));
    child = fork();
    CPPUNIT_ASSERT(child >= 0);
    if (child == 0) {
      // Only system calls here: the parent has threads.
      close(sockets[0]);
      int pair[2];
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) _exit(1);
      const char tag = 'p';
      if (evchan::detail::sendWithDescriptors(sockets[1], &tag, 1, &pair[1], 1)) _exit(1);
      close(pair[1]);
      char byte;
      while (read(sockets[1], &byte, 1) > 0) {
      }
      _exit(0);
    }
    close(sockets[1]);
    link = sockets[0];
    char tag;
    const std::error_code ec =
        evchan::detail::receiveWithDescriptors(link, &tag, 1, &end, 1, evchan::detail::deadlineAfter(kPatience));
    ASSERT_NO_ERROR(ec);
  }
  ~PairFromAnotherProcess() {
    if (end >= 0) close(end);
    if (link >= 0) close(link);
    if (child > 0) waitpid(child, nullptr, 0);
  }
  PairFromAnotherProcess(const PairFromAnotherProcess&) = delete;
  PairFromAnotherProcess& operator=(const PairFromAnotherProcess&) = delete;
};

// A memfd of `size` bytes holding a header that claims `ringSize`;
// sealed unless told otherwise.
int makeMemfd(std::size_t size, std::uint64_t ringSize, bool seal = true, std::uint64_t magic = evchan::detail::kSegmentMagic) {
  const int fd = memfd_create("evchan-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  CPPUNIT_ASSERT(fd >= 0);
  CPPUNIT_ASSERT_EQUAL(0, ftruncate(fd, static_cast<off_t>(size)));
  evchan::detail::SegmentHeader header = {};
  header.magic = magic;
  header.version = evchan::detail::kSegmentVersion;
  header.headerSize = evchan::detail::kHeaderSize;
  header.ringSize = ringSize;
  header.segmentSize = evchan::detail::kHeaderSize + 2 * ringSize;
  CPPUNIT_ASSERT(pwrite(fd, &header, offsetof(evchan::detail::SegmentHeader, rings), 0) > 0);
  if (seal) CPPUNIT_ASSERT_EQUAL(0, fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
  return fd;
}

using Pair = evchan::test::ShmPair;

Pair connectPair(ShmListener& listener, std::size_t ringSize = ShmStream::kDefaultRingSize) {
  return evchan::test::connectShmPair(listener, ringSize, kPatience);
}

}  // namespace

class ShmStreamTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ShmStreamTest);
  CPPUNIT_TEST(testEchoBetweenThreads);
  CPPUNIT_TEST(testPathName);
  CPPUNIT_TEST(testNobodyListening);
  CPPUNIT_TEST(testBadInput);
  CPPUNIT_TEST(testReadTimeout);
  CPPUNIT_TEST(testWriteTimeoutWhenRingFull);
  CPPUNIT_TEST(testCloseIsEndOfStreamAndBrokenPipe);
  CPPUNIT_TEST(testViewsWrapAroundTheRing);
  CPPUNIT_TEST(testViewsRefuseWhatWasNotLent);
  CPPUNIT_TEST(testViewsEndAndTimeOutLikeCopies);
  CPPUNIT_TEST(testBigTransferAcrossProcesses);
  CPPUNIT_TEST(testBigTransferInPlaceAcrossProcesses);
  CPPUNIT_TEST(testEchoAcrossProcesses);
  CPPUNIT_TEST(testWriterKilledMidTransfer);
  CPPUNIT_TEST(testReaderKilledMidTransfer);
  CPPUNIT_TEST(testPeerDiesMidMessage);
  CPPUNIT_TEST(testReaderPollingWithoutTimeoutSeesPeerKilled);
  CPPUNIT_TEST(testReaderWithATinyTimeoutSeesPeerKilled);
  CPPUNIT_TEST(testWriterPollingWithoutTimeoutSeesPeerKilled);
  CPPUNIT_TEST(testHeadBeyondRing);
  CPPUNIT_TEST(testHeadGoingBackwards);
  CPPUNIT_TEST(testTailAheadOfHead);
  CPPUNIT_TEST(testHeaderSizeScribbledAfterAccept);
  CPPUNIT_TEST(testBadSegmentsRefused);
  CPPUNIT_TEST(testWriteProtectedSegmentsRefused);
  CPPUNIT_TEST(testDoorbellMustBeTheClientsOwnPair);
  CPPUNIT_TEST(testSilentClientsDoNotDelayOthers);
  CPPUNIT_TEST(testSilentClientsDoNotDelayOthersInTask);
  CPPUNIT_TEST(testOtherUsersRefused);
  CPPUNIT_TEST(testTaskReaderSuspends);
  CPPUNIT_TEST(testBothEndsInTasksOnOneWorker);
  CPPUNIT_TEST(testReadTimeoutInTask);
  CPPUNIT_TEST(testBusyReaderInATaskLetsTheOtherTasksRun);
  CPPUNIT_TEST(testTaskReaderSeesPeerKilled);
  CPPUNIT_TEST(testCancelEndsABlockedReadOnThread);
  CPPUNIT_TEST(testCancelEndsAWriteOnAFullRing);
  CPPUNIT_TEST(testCancelEndsAReadInATask);
  CPPUNIT_TEST(testCancelWithoutWaiterIsHarmless);
  CPPUNIT_TEST(testCancelRacingCompletingReads);
  CPPUNIT_TEST_SUITE_END();

 public:
  // ---------------------------------------------------------- basics
  void testEchoBetweenThreads() {
    ShmListener listener = ShmListener::listen(uniqueName("echo"));
    Pair pair = connectPair(listener);
    std::thread echo([&] {
      char buffer[100];
      std::error_code ec;
      for (;;) {
        const std::size_t n = pair.server.readSome(buffer, sizeof buffer, ec);
        if (ec) break;
        pair.server.writeAll(buffer, n);
      }
      pair.server.close();
    });
    const std::string text(10000, 'x');
    std::string back(text.size(), '\0');
    pair.client.writeAll(text.data(), text.size());
    pair.client.readExactly(&back[0], back.size());
    CPPUNIT_ASSERT(text == back);
    pair.client.shutdownWrite();
    std::error_code ec;
    char byte;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(&byte, 1, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
    echo.join();
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(&byte, 0, ec));
    ASSERT_NO_ERROR(ec);
  }

  void testPathName() {
    char directory[] = "/tmp/evchan-shm-XXXXXX";
    CPPUNIT_ASSERT(mkdtemp(directory) != nullptr);
    const std::string path = std::string(directory) + "/socket";
    {
      ShmListener listener = ShmListener::listen(path);
      std::error_code ec;
      ShmListener::listen(path, 16, ec);
      ASSERT_ERROR(std::errc::address_in_use, ec);
      Pair pair = connectPair(listener);
      pair.client.writeAll("ping", 4);
      char buffer[4];
      pair.server.readExactly(buffer, 4);
      CPPUNIT_ASSERT_EQUAL(std::string("ping"), std::string(buffer, 4));
    }
    struct stat status;
    CPPUNIT_ASSERT_MESSAGE("the socket file outlived its listener", stat(path.c_str(), &status) != 0);
    rmdir(directory);
  }

  void testNobodyListening() {
    std::error_code ec;
    ShmStream stream = ShmStream::connect(uniqueName("nobody"), 1s, ec);
    ASSERT_ERROR(std::errc::connection_refused, ec);
    CPPUNIT_ASSERT(!stream.isOpen());
    ShmStream::connect("/nonexistent-evchan-dir/socket", 1s, ec);
    ASSERT_ERROR(std::errc::no_such_file_or_directory, ec);
    CPPUNIT_ASSERT_THROW(ShmStream::connect(uniqueName("nobody")), evchan::SystemError);
    // A listener that closed without accepting: the stream sees a reset.
    const std::string name = uniqueName("closed");
    ShmListener listener = ShmListener::listen(name);
    stream = ShmStream::connect(name, 1s);
    stream.setTimeout(kPatience);
    listener.close();
    char byte;
    stream.readSome(&byte, 1, ec);
    ASSERT_ERROR(std::errc::connection_reset, ec);
  }

  void testBadInput() {
    std::error_code ec;
    ShmStream closed;
    char byte = 0;
    closed.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.writeAll(&byte, 1, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.shutdownWrite(ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT_THROW(closed.readSome(&byte, 1), evchan::SystemError);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, closed.ringSize());

    ShmListener::listen("", 16, ec);
    ASSERT_ERROR(Errc::bad_endpoint, ec);
    ShmListener::listen("@", 16, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    ShmListener::listen("@" + std::string(200, 'n'), 16, ec);
    ASSERT_ERROR(std::errc::filename_too_long, ec);
    ShmListener closedListener;
    closedListener.accept(ec);
    ASSERT_ERROR(Errc::not_open, ec);

    const std::string name = uniqueName("bad-input");
    ShmListener listener = ShmListener::listen(name);
    ShmStream::connect(name, -1s, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    ShmStream::connect(name, 1s, 5000, ec);  // not a power of two
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    ShmStream::connect(name, 1s, 1024, ec);  // too small
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    listener.setTimeout(-1s, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);

    Pair pair = connectPair(listener, 4096);
    CPPUNIT_ASSERT_EQUAL(std::size_t{4096}, pair.client.ringSize());
    pair.client.readSome(nullptr, 1, ec);
    ASSERT_ERROR(Errc::null_buffer, ec);
    pair.client.writeAll(nullptr, 1, ec);
    ASSERT_ERROR(Errc::null_buffer, ec);
    pair.client.setTimeout(-1s, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    pair.client.close();
    pair.client.close();  // idempotent
    CPPUNIT_ASSERT(!pair.client.isOpen());
  }

  // ---------------------------------------------------------- timeouts
  void testReadTimeout() {
    ShmListener listener = ShmListener::listen(uniqueName("read-timeout"));
    Pair pair = connectPair(listener);
    pair.server.setTimeout(150ms);
    std::error_code ec;
    char byte;
    const auto elapsed = evchan::test::timed([&] { pair.server.readSome(&byte, 1, ec); });
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed >= 140ms && elapsed < generous(3s));
    pair.server.setTimeout(0s);
    pair.server.readSome(&byte, 1, ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    // A timeout leaves the stream usable.
    pair.client.writeAll("z", 1);
    pair.server.setTimeout(kPatience);
    pair.server.readExactly(&byte, 1);
    CPPUNIT_ASSERT_EQUAL('z', byte);
    // Accept times out too.
    listener.setTimeout(50ms);
    listener.accept(ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
  }

  void testWriteTimeoutWhenRingFull() {
    ShmListener listener = ShmListener::listen(uniqueName("write-timeout"));
    Pair pair = connectPair(listener, 4096);
    pair.client.setTimeout(100ms);
    std::vector<char> data(10000, 'w');
    std::error_code ec;
    const std::size_t written = pair.client.writeAll(data.data(), data.size(), ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{4096}, written);
    std::vector<char> got(4096);
    pair.server.readExactly(got.data(), got.size());
    // The room made wakes nobody now, but the next write fits.
    pair.client.setTimeout(kPatience);
    pair.client.writeAll(data.data(), 10);
  }

  void testCloseIsEndOfStreamAndBrokenPipe() {
    ShmListener listener = ShmListener::listen(uniqueName("close"));
    Pair pair = connectPair(listener);
    pair.client.writeAll("last words", 10);
    pair.client.close();
    char buffer[10];
    pair.server.readExactly(buffer, 10);
    CPPUNIT_ASSERT_EQUAL(std::string("last words"), std::string(buffer, 10));
    std::error_code ec;
    pair.server.readSome(buffer, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
    pair.server.writeAll("x", 1, ec);
    ASSERT_ERROR(std::errc::broken_pipe, ec);
    // shutdownWrite: this side may still read, but not write.
    Pair other = connectPair(listener);
    other.server.shutdownWrite();
    other.server.writeAll("x", 1, ec);
    ASSERT_ERROR(std::errc::broken_pipe, ec);
    other.client.readSome(buffer, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
    other.client.writeAll("still", 5);
    other.server.readExactly(buffer, 5);
  }

  // ---------------------------------------------------------- in place
  // A 4 KiB ring and 128 KiB through it in views of varying size, partly
  // consumed and committed: every byte arrives once, in order, across
  // the ring's end many times; readSome() interleaves with the views.
  void testViewsWrapAroundTheRing() {
    ShmListener listener = ShmListener::listen(uniqueName("views"));
    Pair pair = connectPair(listener, 4096);
    pair.client.setTimeout(kPatience);
    pair.server.setTimeout(kPatience);
    std::vector<std::uint64_t> sent(128 * 1024 / sizeof(std::uint64_t));
    fillWords(sent, 7);
    std::thread writer([&] {
      std::error_code ec;
      writeAllInPlace(pair.client, sent.data(), sent.size() * 8, ec);
      if (!ec) pair.client.shutdownWrite(ec);
      if (ec) std::fprintf(stderr, "writer: %s\n", ec.message().c_str());
    });
    std::vector<std::uint64_t> got(sent.size());
    auto* into = reinterpret_cast<unsigned char*>(got.data());
    std::size_t received = 0;
    int shortViews = 0;  // ended before maxSize with more data written: the ring's end (or the writer's pace)
    for (int round = 0; received < got.size() * 8; ++round) {
      const std::size_t want = std::min<std::size_t>(got.size() * 8 - received, 3000);
      if (round % 5 == 4) {
        received += pair.server.readSome(into + received, want);
        continue;
      }
      const evchan::ConstBuffer view = pair.server.readView(want);
      CPPUNIT_ASSERT(view.size > 0 && view.size <= want);
      if (view.size < want) ++shortViews;
      std::memcpy(into + received, view.data, view.size);
      received += view.size;
      pair.server.consume(view.size);
    }
    writer.join();
    CPPUNIT_ASSERT(sent == got);
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.readView(1, ec).size);
    ASSERT_ERROR(Errc::end_of_stream, ec);
    std::printf("views ended before their maxSize: %d\n", shortViews);
  }

  // consume() and commit() take back at most what was lent, once; a
  // refused one changes nothing.
  void testViewsRefuseWhatWasNotLent() {
    ShmListener listener = ShmListener::listen(uniqueName("views-refused"));
    Pair pair = connectPair(listener, 4096);
    std::error_code ec;
    pair.client.commit(1, ec);  // nothing lent yet
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    evchan::ShmRoom room = pair.client.writeView(10);
    CPPUNIT_ASSERT_EQUAL(std::size_t{10}, room.size);
    std::memcpy(room.data, "0123456789", 10);
    pair.client.commit(11, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    pair.server.setTimeout(0ms);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.readView(10, ec).size);
    ASSERT_ERROR(std::errc::timed_out, ec);  // the refused commit sent nothing
    pair.client.commit(4);
    pair.client.commit(1, ec);  // each room is committed once
    ASSERT_ERROR(std::errc::invalid_argument, ec);

    evchan::ConstBuffer view = pair.server.readView(10);
    CPPUNIT_ASSERT_EQUAL(std::string("0123"), std::string(static_cast<const char*>(view.data), view.size));
    pair.server.consume(5, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    pair.server.consume(1);
    pair.server.consume(1, ec);  // each view is consumed once
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    view = pair.server.readView(10);
    CPPUNIT_ASSERT_EQUAL(std::string("123"), std::string(static_cast<const char*>(view.data), view.size));
    // A copying read takes over from the view, which it ends.
    char copy[3];
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, pair.server.readSome(copy, 3));
    CPPUNIT_ASSERT_EQUAL(std::string("123"), std::string(copy, 3));
    pair.server.consume(1, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    // A zero maxSize lends nothing, at once.
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.readView(0, ec).size);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.writeView(0, ec).size);
    ASSERT_NO_ERROR(ec);
    // Closed: not_open for every call.
    pair.client.close();
    pair.client.writeView(10, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    pair.client.commit(0, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    pair.client.readView(10, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    pair.client.consume(0, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT_THROW(pair.client.readView(10), evchan::SystemError);
  }

  // Views wait, time out and end as copies do: a full ring times the
  // writer's view out, an empty one the reader's; shutdownWrite() is the
  // end of the stream after the data, and a room lent before it cannot be
  // committed after it.
  void testViewsEndAndTimeOutLikeCopies() {
    ShmListener listener = ShmListener::listen(uniqueName("views-end"));
    Pair pair = connectPair(listener, 4096);
    pair.client.setTimeout(50ms);
    pair.server.setTimeout(50ms);
    std::error_code ec;
    pair.server.readView(10, ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    std::size_t filled = 0;
    for (;;) {
      const evchan::ShmRoom room = pair.client.writeView(4096, ec);
      if (ec) break;
      std::memset(room.data, 'f', room.size);
      pair.client.commit(room.size);
      filled += room.size;
    }
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{4096}, filled);
    // Room made by a consume() is lent again.
    const evchan::ConstBuffer view = pair.server.readView(100);
    CPPUNIT_ASSERT_EQUAL(std::size_t{100}, view.size);
    pair.server.consume(100);
    evchan::ShmRoom room = pair.client.writeView(1000);
    CPPUNIT_ASSERT_EQUAL(std::size_t{100}, room.size);
    pair.client.shutdownWrite();
    pair.client.commit(100, ec);
    ASSERT_ERROR(std::errc::broken_pipe, ec);
    pair.client.writeView(1, ec);
    ASSERT_ERROR(std::errc::broken_pipe, ec);
    std::vector<char> rest(4096);
    CPPUNIT_ASSERT_EQUAL(std::size_t{3996}, pair.server.readExactly(rest.data(), 3996));
    pair.server.readView(1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  // ---------------------------------------------------------- processes
  void testBigTransferAcrossProcesses() {
    PeerConnection connection("send-gib", "gib");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    std::vector<std::uint64_t> chunk(kChunk / sizeof(std::uint64_t));
    std::uint64_t sum = kChecksumSeed;
    for (std::uint64_t received = 0; received < kBigTransfer; received += kChunk) {
      stream.readExactly(chunk.data(), kChunk);
      sum = checksumWords(sum, chunk);
    }
    std::uint64_t theirs = 0;
    stream.readExactly(&theirs, sizeof theirs);
    CPPUNIT_ASSERT_EQUAL(theirs, sum);
    std::error_code ec;
    char byte;
    stream.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT_EQUAL(0, peer.exitStatus());
  }

  // A gibibyte written in place by another process and read in place:
  // views of varying size, partly consumed and committed.
  void testBigTransferInPlaceAcrossProcesses() {
    PeerConnection connection("send-gib-in-place", "gib-in-place");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    std::vector<std::uint64_t> chunk(kChunk / sizeof(std::uint64_t));
    std::uint64_t sum = kChecksumSeed;
    std::error_code ec;
    for (std::uint64_t received = 0; received < kBigTransfer; received += kChunk) {
      CPPUNIT_ASSERT_MESSAGE(ec.message(), readAllInPlace(stream, chunk.data(), kChunk, ec));
      sum = checksumWords(sum, chunk);
    }
    std::uint64_t theirs = 0;
    CPPUNIT_ASSERT_MESSAGE(ec.message(), readAllInPlace(stream, &theirs, sizeof theirs, ec));
    CPPUNIT_ASSERT_EQUAL(theirs, sum);
    stream.readView(1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT_EQUAL(0, peer.exitStatus());
  }

  void testEchoAcrossProcesses() {
    PeerConnection connection("echo", "echo-process");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    std::vector<std::uint64_t> out(1000), in(1000);
    for (int round = 0; round < 200; ++round) {
      fillWords(out, static_cast<std::uint64_t>(round) * out.size());
      const std::size_t bytes = (round % 50 + 1) * 64;
      stream.writeAll(out.data(), bytes);
      stream.readExactly(in.data(), bytes);
      CPPUNIT_ASSERT_EQUAL(0, std::memcmp(out.data(), in.data(), bytes));
    }
    stream.close();
    CPPUNIT_ASSERT_EQUAL(0, peer.exitStatus());
  }

  void testWriterKilledMidTransfer() {
    PeerConnection connection("send-forever", "writer-killed");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    std::vector<char> buffer(kChunk);
    std::size_t received = 0;
    while (received < (std::size_t{8} << 20)) received += stream.readSome(buffer.data(), buffer.size());
    peer.kill9();
    std::error_code ec;
    const auto elapsed = evchan::test::timed([&] {
      while (!ec) stream.readSome(buffer.data(), buffer.size(), ec);
    });
    ASSERT_ERROR(std::errc::connection_reset, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(5s));
    // Stays that way.
    stream.readSome(buffer.data(), buffer.size(), ec);
    ASSERT_ERROR(std::errc::connection_reset, ec);
  }

  void testReaderKilledMidTransfer() {
    PeerConnection connection("sink", "reader-killed");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    std::vector<char> buffer(kChunk, 'k');
    for (int i = 0; i < 32; ++i) stream.writeAll(buffer.data(), buffer.size());
    peer.kill9();
    std::error_code ec;
    const auto elapsed = evchan::test::timed([&] {
      while (!ec) stream.writeAll(buffer.data(), buffer.size(), ec);
    });
    ASSERT_ERROR(std::errc::connection_reset, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(5s));
  }

  // A caller that polls (a zero timeout, or one that runs out before its
  // call would sleep) learns of the peer's death as a sleeping one does.
  // Only a sleep read the bell where the death shows: such a caller got
  // timed_out for ever.
  void testReaderPollingWithoutTimeoutSeesPeerKilled() { checkReaderSeesPeerKilled(evchan::Duration::zero()); }
  void testReaderWithATinyTimeoutSeesPeerKilled() { checkReaderSeesPeerKilled(std::chrono::nanoseconds(1)); }

  void checkReaderSeesPeerKilled(evchan::Duration timeout) {
    PeerConnection connection("send-forever", "poll-reader-killed");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    std::vector<char> buffer(kChunk);
    std::size_t received = 0;
    while (received < (std::size_t{1} << 20)) received += stream.readSome(buffer.data(), buffer.size());
    peer.kill9();
    stream.setTimeout(timeout);
    const std::error_code ec = pollUntilNotTimedOut([&](std::error_code& failed) {
      stream.readSome(buffer.data(), buffer.size(), failed);
    });
    ASSERT_ERROR(std::errc::connection_reset, ec);
  }

  void testWriterPollingWithoutTimeoutSeesPeerKilled() {
    PeerConnection connection("sink", "poll-writer-killed");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    std::vector<char> buffer(kChunk, 'p');
    stream.writeAll(buffer.data(), buffer.size());
    peer.kill9();
    stream.setTimeout(evchan::Duration::zero());
    const std::error_code ec = pollUntilNotTimedOut([&](std::error_code& failed) {
      stream.writeSome(buffer.data(), buffer.size(), failed);
    });
    ASSERT_ERROR(std::errc::connection_reset, ec);
  }

  // Calls `call` until it fails with something else than timed_out (and
  // returns that), or for 5 s (returns timed_out).
  template <class Call>
  static std::error_code pollUntilNotTimedOut(Call call) {
    const auto giveUp = std::chrono::steady_clock::now() + generous(5s);
    std::error_code ec;
    while (std::chrono::steady_clock::now() < giveUp) {
      ec.clear();
      call(ec);
      if (ec && ec != std::errc::timed_out) return ec;
      std::this_thread::sleep_for(1ms);
    }
    return ec;
  }

  void testPeerDiesMidMessage() {
    PeerConnection connection("half-message", "half");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    char message[200];
    std::error_code ec;
    const std::size_t got = stream.readExactly(message, sizeof message, ec);
    ASSERT_ERROR(std::errc::connection_reset, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{100}, got);
    CPPUNIT_ASSERT_EQUAL(0, peer.exitStatus());
  }

  // ---------------------------------------------------------- hostile peers
  void testHeadBeyondRing() {
    const std::string name = uniqueName("head-beyond");
    ShmListener listener = ShmListener::listen(name);
    RawClient client;
    client.connectWellFormed(name);
    ShmStream stream = acceptWithin(listener);
    client.toListener().head.store(std::uint64_t{1} << 40);
    char buffer[64];
    std::error_code ec;
    stream.readSome(buffer, sizeof buffer, ec);
    ASSERT_ERROR(std::errc::protocol_error, ec);
    // Even when the peer repents, the stream stays unusable.
    client.toListener().head.store(0);
    stream.readSome(buffer, sizeof buffer, ec);
    ASSERT_ERROR(std::errc::protocol_error, ec);
    CPPUNIT_ASSERT_THROW(stream.readSome(buffer, sizeof buffer), evchan::SystemError);
  }

  void testHeadGoingBackwards() {
    const std::string name = uniqueName("head-back");
    ShmListener listener = ShmListener::listen(name);
    RawClient client;
    client.connectWellFormed(name);
    ShmStream stream = acceptWithin(listener);
    // 100 honest bytes, read; then the head moves back behind our tail.
    std::memset(evchan::detail::segmentBytes(client.segment, evchan::detail::kHeaderSize), 'h', 100);
    client.toListener().head.store(100, std::memory_order_release);
    char buffer[200];
    CPPUNIT_ASSERT_EQUAL(std::size_t{100}, stream.readSome(buffer, sizeof buffer));
    client.toListener().head.store(40, std::memory_order_release);
    std::error_code ec;
    stream.readSome(buffer, sizeof buffer, ec);
    ASSERT_ERROR(std::errc::protocol_error, ec);
  }

  void testTailAheadOfHead() {
    const std::string name = uniqueName("tail-ahead");
    ShmListener listener = ShmListener::listen(name);
    RawClient client;
    client.connectWellFormed(name);
    ShmStream stream = acceptWithin(listener);
    stream.writeAll("abc", 3);
    client.fromListener().tail.store(1000);  // "consumed" more than was written
    std::error_code ec;
    stream.writeAll("d", 1, ec);
    ASSERT_ERROR(std::errc::protocol_error, ec);
    stream.writeAll("d", 1, ec);
    ASSERT_ERROR(std::errc::protocol_error, ec);
  }

  // The ring size is read once, at accept: changing it later changes nothing.
  void testHeaderSizeScribbledAfterAccept() {
    const std::string name = uniqueName("size-scribble");
    ShmListener listener = ShmListener::listen(name);
    RawClient client;
    client.connectWellFormed(name);
    ShmStream stream = acceptWithin(listener);
    client.segment.header->ringSize = std::uint64_t{1} << 40;
    client.segment.header->magic = 0;
    std::vector<char> data(3000, 's');
    stream.writeAll(data.data(), data.size());
    CPPUNIT_ASSERT_EQUAL(std::uint64_t{3000}, client.fromListener().head.load());
    CPPUNIT_ASSERT_EQUAL(std::size_t{4096}, stream.ringSize());
  }

  void testBadSegmentsRefused() {
    const std::string name = uniqueName("bad-segments");
    ShmListener listener = ShmListener::listen(name);
    const std::size_t ring = 4096, size = evchan::detail::kHeaderSize + 2 * ring;
    auto refused = [&](const char* what, auto&& misbehave) {
      RawClient client;
      client.connectTo(name);
      misbehave(client);
      std::error_code ec;
      listener.setTimeout(kPatience);
      ShmStream stream = listener.accept(ec);
      CPPUNIT_ASSERT_MESSAGE(std::string(what) + ": " + describe(ec), ec == std::errc::bad_message);
      CPPUNIT_ASSERT(!stream.isOpen());
    };
    refused("bad magic", [&](RawClient& c) {
      const int fd = makeMemfd(size, ring, true, 0x1234);
      c.sendHello(fd);
      close(fd);
    });
    refused("truncated", [&](RawClient& c) {
      const int fd = makeMemfd(size - 4096, ring);  // header claims more than there is
      c.sendHello(fd);
      close(fd);
    });
    refused("ring size not a power of two", [&](RawClient& c) {
      const int fd = makeMemfd(evchan::detail::kHeaderSize + 2 * 6000, 6000);
      c.sendHello(fd);
      close(fd);
    });
    refused("unsealed", [&](RawClient& c) {
      const int fd = makeMemfd(size, ring, false);
      c.sendHello(fd);
      close(fd);
    });
    refused("not a memfd", [&](RawClient& c) {
      int pipeFds[2];
      CPPUNIT_ASSERT_EQUAL(0, pipe(pipeFds));
      c.sendHello(pipeFds[0]);
      close(pipeFds[0]);
      close(pipeFds[1]);
    });
    refused("bad hello", [&](RawClient& c) {
      const int fd = makeMemfd(size, ring);
      c.sendHello(fd, 42);
      close(fd);
    });
    refused("no descriptors", [&](RawClient& c) {
      const char garbage[16] = "garbage garbage";
      CPPUNIT_ASSERT_EQUAL(ssize_t{16}, send(c.control, garbage, sizeof garbage, MSG_NOSIGNAL));
    });
    refused("hung up partway through the hello", [&](RawClient& c) {
      CPPUNIT_ASSERT_EQUAL(ssize_t{4}, send(c.control, "hell", 4, MSG_NOSIGNAL));
      close(c.control);
      c.control = -1;
    });
    // One that hangs up before a byte began no handshake (a probe): no
    // error, the wait goes on to its timeout.
    {
      RawClient c;
      c.connectTo(name);
      close(c.control);
      c.control = -1;
      std::error_code ec;
      listener.setTimeout(100ms);
      ShmStream stream = listener.accept(ec);
      CPPUNIT_ASSERT_MESSAGE("hung up before a byte: " + describe(ec), ec == std::errc::timed_out && !stream.isOpen());
    }
    // The listener still serves well-behaved clients.
    Pair pair = connectPair(listener);
    pair.client.writeAll("ok", 2);
    char buffer[2];
    pair.server.readExactly(buffer, 2);
  }

  // Issue 11, item 11: a segment we may not map writable is a bad segment,
  // not the mmap error (operation_not_permitted) it used to leak.
  void testWriteProtectedSegmentsRefused() {
    const std::string name = uniqueName("write-protected");
    ShmListener listener = ShmListener::listen(name);
    const std::size_t ring = 4096, size = evchan::detail::kHeaderSize + 2 * ring;
    std::string failures;  // every case runs; the message names those that failed
    auto refused = [&](const char* what, int memfd) {
      RawClient client;
      client.connectTo(name);
      client.sendHello(memfd);
      close(memfd);
      std::error_code ec;
      listener.setTimeout(kPatience);
      ShmStream stream = listener.accept(ec);
      if (ec != std::errc::bad_message || stream.isOpen()) failures += std::string(what) + ": " + describe(ec) + "; ";
    };
    int fd = makeMemfd(size, ring);
    CPPUNIT_ASSERT_EQUAL(0, fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    refused("write-sealed", fd);
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
    fd = makeMemfd(size, ring);
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0) {
      refused("future-write-sealed", fd);
    } else {
      close(fd);  // a kernel before 5.1
    }
    // The same memfd, opened again read-only through /proc.
    fd = makeMemfd(size, ring);
    const int readOnly = open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_CLOEXEC);
    close(fd);
    CPPUNIT_ASSERT(readOnly >= 0);
    refused("read-only descriptor", readOnly);
    CPPUNIT_ASSERT_MESSAGE(failures, failures.empty());
    Pair pair = connectPair(listener);  // the listener still serves
  }

  // Issue 11, item 10: the space doorbell must be the far end of a
  // socketpair whose near end the client itself holds; anything else
  // would let the client's death go unnoticed by a writer waiting for
  // room (a listening socket never reads end of file; an unconnected one
  // fails with EINVAL; a crossed one has its other end here).
  void testDoorbellMustBeTheClientsOwnPair() {
    const std::string name = uniqueName("doorbells");
    ShmListener listener = ShmListener::listen(name);
    listener.setTimeout(kPatience);
    std::string failures;  // every case runs; the message names those that failed
    auto refused = [&](const char* what, auto&& makeBell) {
      RawClient client;
      client.connectTo(name);
      const int bell = makeBell(client);
      client.sendHelloWithBell(bell);
      close(bell);
      std::error_code ec;
      ShmStream stream = listener.accept(ec);
      if (ec != std::errc::bad_message || stream.isOpen()) failures += std::string(what) + ": " + describe(ec) + "; ";
    };
    // A plain listening socket of the client's, on an abstract name.
    const std::string bellName = uniqueName("bell-listener");
    sockaddr_un bellAddress = {};
    bellAddress.sun_family = AF_UNIX;
    std::memcpy(bellAddress.sun_path + 1, bellName.data() + 1, bellName.size() - 1);
    const socklen_t bellLength = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + bellName.size());
    const int bellListener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CPPUNIT_ASSERT_EQUAL(0, bind(bellListener, reinterpret_cast<sockaddr*>(&bellAddress), bellLength));
    CPPUNIT_ASSERT_EQUAL(0, ::listen(bellListener, 4));
    refused("a listening socket", [&](RawClient&) { return dup(bellListener); });
    refused("an unconnected socket", [&](RawClient&) { return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); });
    refused("a datagram pair", [&](RawClient& c) {
      int pair[2];
      CPPUNIT_ASSERT_EQUAL(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair));
      c.spaceBell = pair[0];
      return pair[1];
    });
    refused("crossed: its own control connection", [&](RawClient& c) { return dup(c.control); });
    refused("crossed: a connection to a socket it listens on", [&](RawClient&) {
      const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      CPPUNIT_ASSERT_EQUAL(0, ::connect(fd, reinterpret_cast<sockaddr*>(&bellAddress), bellLength));
      return fd;
    });
    close(bellListener);
    PairFromAnotherProcess foreign;
    refused("a pair whose other end another process holds", [&](RawClient&) {
      const int end = foreign.end;
      foreign.end = -1;
      return end;
    });
    // One pair split over two connections: the listener would hold both
    // ends, so neither connection could ever see the client die.
    if (evchan::detail::kernelTellsUnixPeers()) {
      int pair[2];
      CPPUNIT_ASSERT_EQUAL(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
      RawClient first, second;
      first.connectTo(name);
      first.sendHelloWithBell(pair[0]);
      second.connectTo(name);
      second.sendHelloWithBell(pair[1]);
      close(pair[0]);
      close(pair[1]);
      std::error_code ec;
      ShmStream accepted = listener.accept(ec);
      ASSERT_NO_ERROR(ec);
      ShmStream crossed = listener.accept(ec);
      if (ec != std::errc::bad_message || crossed.isOpen()) failures += "one pair split over two connections: " + describe(ec);
    }
    {
      // One end passed to two connections: its far end then either stays
      // with the client (harmless) or moves here by a third connection
      // (the split pair again), so the second is refused already.
      int pair[2];
      CPPUNIT_ASSERT_EQUAL(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
      RawClient first, second;
      first.connectTo(name);
      first.sendHelloWithBell(pair[1]);
      second.connectTo(name);
      second.sendHelloWithBell(pair[1]);
      close(pair[1]);
      std::error_code ec;
      ShmStream accepted = listener.accept(ec);
      ASSERT_NO_ERROR(ec);
      ShmStream twice = listener.accept(ec);
      if (ec != std::errc::bad_message || twice.isOpen()) failures += "one end passed twice: " + describe(ec);
      close(pair[0]);
    }
    if (!evchan::detail::kernelTellsUnixPeers()) {
      std::fprintf(stderr, "[skipped the split pair: the kernel has no unix_diag to name a socket's peer] ");
    }
    CPPUNIT_ASSERT_MESSAGE(failures, failures.empty());
    Pair pair = connectPair(listener);  // the listener still serves
    pair.client.writeAll("ok", 2);
    char buffer[2];
    pair.server.readExactly(buffer, 2);
  }

  // Issue 11, item 9: clients that connect and then say nothing hold no
  // handshake but their own: a well-behaved client that connects after
  // them is accepted first, while their handshakes stay open.
  void testSilentClientsDoNotDelayOthers() {
    const std::string name = uniqueName("silent");
    ShmListener listener = ShmListener::listen(name);
    constexpr int kSilent = 8;
    std::vector<RawClient> silent(kSilent);
    for (RawClient& client : silent) client.connectTo(name);
    std::error_code ec;
    ShmStream good = ShmStream::connect(name, kPatience, 4096, ec);
    ASSERT_NO_ERROR(ec);
    listener.setTimeout(kPatience);
    ShmStream served = listener.accept(ec);
    ASSERT_NO_ERROR(ec);  // not the first silent client's bad_message
    served.setTimeout(kPatience);
    good.writeAll("good", 4);
    char buffer[4];
    served.readExactly(buffer, 4);
    CPPUNIT_ASSERT_EQUAL(std::string("good"), std::string(buffer, 4));
    // A silent client that speaks up in time is still served.
    silent[3].segment = evchan::detail::createSegment(4096, ec);
    ASSERT_NO_ERROR(ec);
    silent[3].sendHello(silent[3].segment.fd);
    ShmStream late = listener.accept(ec);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT(late.isOpen());
    // The others run out of patience together, not one after another.
    const auto elapsed = evchan::test::timed([&] {
      for (int i = 0; i < kSilent - 1; ++i) {
        listener.accept(ec);
        ASSERT_ERROR(std::errc::bad_message, ec);
      }
    });
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(2 * kHelloPatience));
    // And each was hung up on.
    for (int i = 0; i < kSilent; ++i) {
      if (i == 3) continue;
      char byte;
      CPPUNIT_ASSERT_EQUAL(ssize_t{0}, recv(silent[i].control, &byte, 1, 0));
    }
  }

  // The same inside a task, on a channel with one worker.
  void testSilentClientsDoNotDelayOthersInTask() {
    const std::string name = uniqueName("silent-task");
    ShmListener listener = ShmListener::listen(name);
    listener.setTimeout(kPatience);
    std::vector<RawClient> silent(4);
    for (RawClient& client : silent) client.connectTo(name);
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    std::error_code acceptError;
    ShmStream served;
    TaskHandle acceptor = channel->spawn([&] { served = listener.accept(acceptError); });
    std::error_code ec;
    ShmStream good = ShmStream::connect(name, kPatience, 4096, ec);
    ASSERT_NO_ERROR(ec);
    joinWithin(acceptor);
    ASSERT_NO_ERROR(acceptError);
    served.setTimeout(kPatience);
    good.writeAll("task", 4);
    char buffer[4];
    served.readExactly(buffer, 4);
    CPPUNIT_ASSERT_EQUAL(std::string("task"), std::string(buffer, 4));
  }

  // Issue 11, item 9: by default only the listener's own user may connect,
  // even to an abstract name (which has no file permissions).
  void testOtherUsersRefused() {
    if (geteuid() != 0) EVCHAN_SKIP("needs root to run a client as another user (uid 65534)");
    {
      const std::string name = uniqueName("other-user");
      ShmListener listener = ShmListener::listen(name);
      listener.setTimeout(kPatience);
      PeerProcess peer("nobody-refused", name);
      std::error_code ec;
      ShmStream stream = listener.accept(ec);
      ASSERT_ERROR(std::errc::permission_denied, ec);
      CPPUNIT_ASSERT(!stream.isOpen());
      CPPUNIT_ASSERT_EQUAL(0, peer.exitStatus());  // it saw the listener hang up
    }
    // A listener that names that user serves it; so does one for anyone.
    evchan::ShmListenerOptions byUser;
    byUser.allowedUid = kOtherUser;
    evchan::ShmListenerOptions byGroup;
    byGroup.allowedGid = kOtherGroup;
    evchan::ShmListenerOptions anyone;
    anyone.allowAnyUser = true;
    for (const evchan::ShmListenerOptions& options : {byUser, byGroup, anyone}) {
      const std::string name = uniqueName("allowed-user");
      ShmListener listener = ShmListener::listen(name, options);
      listener.setTimeout(kPatience);
      PeerProcess peer("nobody-echo", name);
      ShmStream stream = listener.accept();
      stream.setTimeout(kPatience);
      stream.writeAll("hi", 2);
      char buffer[2];
      stream.readExactly(buffer, 2);
      stream.close();
      CPPUNIT_ASSERT_EQUAL(0, peer.exitStatus());
    }
    // byUser does not let this (root) process in any more.
    const std::string name = uniqueName("only-other-user");
    ShmListener listener = ShmListener::listen(name, byUser);
    listener.setTimeout(kPatience);
    std::error_code ec;
    ShmStream client = ShmStream::connect(name, kPatience, 4096, ec);
    ASSERT_NO_ERROR(ec);
    listener.accept(ec);
    ASSERT_ERROR(std::errc::permission_denied, ec);
  }

  // ---------------------------------------------------------- tasks
  // A task waiting for data suspends: the channel's only worker runs
  // another task meanwhile, and no second thread is started.
  void testTaskReaderSuspends() {
    ShmListener listener = ShmListener::listen(uniqueName("task-reader"));
    Pair pair = connectPair(listener);
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    std::atomic<bool> readerWaiting{false}, otherRan{false};
    std::string received;
    std::error_code readError;
    TaskHandle reader = channel->spawn([&] {
      char buffer[64];
      readerWaiting = true;
      const std::size_t n = pair.server.readExactly(buffer, 5, readError);
      received.assign(buffer, n);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return readerWaiting.load(); }));
    std::this_thread::sleep_for(20ms);  // well past the spin: the reader sleeps
    TaskHandle other = channel->spawn([&] { otherRan = true; });
    joinWithin(other);
    CPPUNIT_ASSERT(!reader.done());
    pair.client.writeAll("hello", 5);
    joinWithin(reader);
    ASSERT_NO_ERROR(readError);
    CPPUNIT_ASSERT_EQUAL(std::string("hello"), received);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("a wait blocked the worker", 1, channel->poolStats().peak);
  }

  // 16 MiB through a 64 KiB ring with both ends as tasks on one worker:
  // each must suspend when the ring is full or empty for the other to run.
  void testBothEndsInTasksOnOneWorker() {
    ShmListener listener = ShmListener::listen(uniqueName("tasks"));
    Pair pair = connectPair(listener, std::size_t{64} << 10);
    constexpr std::size_t kWords = (std::size_t{16} << 20) / 8;
    std::vector<std::uint64_t> out(kWords), in(kWords);
    fillWords(out, 7);
    std::error_code writeError, readError;
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    TaskHandle writer = channel->spawn([&] { pair.client.writeAll(out.data(), kWords * 8, writeError); });
    TaskHandle reader = channel->spawn([&] { pair.server.readExactly(in.data(), kWords * 8, readError); });
    joinWithin(writer);
    joinWithin(reader);
    ASSERT_NO_ERROR(writeError);
    ASSERT_NO_ERROR(readError);
    CPPUNIT_ASSERT(out == in);
    CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().peak);
  }

  void testReadTimeoutInTask() {
    ShmListener listener = ShmListener::listen(uniqueName("task-timeout"));
    Pair pair = connectPair(listener);
    pair.server.setTimeout(100ms);
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    std::error_code ec;
    Clock::duration elapsed{};
    TaskHandle reader = channel->spawn([&] {
      char byte;
      elapsed = evchan::test::timed([&] { pair.server.readSome(&byte, 1, ec); });
    });
    joinWithin(reader);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed >= 90ms && elapsed < generous(3s));
  }

  // A task whose every read finds bytes in the ring never has to suspend:
  // its reads yield every 64, so that the other tasks of its one worker
  // (a 1 ms ticker) still run while a thread keeps the ring full.
  void testBusyReaderInATaskLetsTheOtherTasksRun() {
    ShmListener listener = ShmListener::listen(uniqueName("busy"));
    Pair pair = connectPair(listener);
    evchan::test::StreamFeeder feeder(pair.client);
    std::atomic<bool> stop{false};
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    evchan::test::Ticker ticker(*channel);
    std::atomic<int> ticksAtStart{-1};
    std::atomic<long> calls{0};
    std::error_code readError;
    TaskHandle reader = channel->spawn([&] {
      ticksAtStart = ticker.ticks.load();
      // A byte a call: what the ring holds lasts the reader a long while,
      // should the feeder get no CPU for it on a loaded machine.
      char byte;
      while (!stop.load() && !readError) {
        pair.server.readSome(&byte, 1, readError);
        ++calls;
      }
    });
    const bool ticked = evchan::test::ticksBeside(ticker, ticksAtStart, 20, kPatience);
    stop = true;
    joinWithin(reader);
    pair.server.close();  // a write waiting for room fails
    feeder.stop();
    ticker.end();
    ASSERT_NO_ERROR(readError);
    CPPUNIT_ASSERT_MESSAGE("the ticker stood still beside a busy reader (" + std::to_string(calls.load()) + " reads)",
                           ticked);
    CPPUNIT_ASSERT(calls.load() > 64);  // the reader did not simply wait
  }

  // ---------------------------------------------------------- cancel()
  // Calls cancel() every 10 ms until `done`: a cancel() ends only calls
  // that have begun.
  template <class Cancel>
  static bool cancelUntil(const std::atomic<bool>& done, Cancel cancel) {
    return evchan::test::eventually([&] {
      if (!done.load()) cancel();
      return done.load();
    });
  }

  void testCancelEndsABlockedReadOnThread() {
    ShmListener listener = ShmListener::listen(uniqueName("cancel-read"));
    Pair pair = connectPair(listener);
    std::atomic<bool> done{false};
    std::error_code ec;
    std::thread reader([&] {
      char byte;
      pair.server.readSome(&byte, 1, ec);
      done = true;
    });
    std::this_thread::sleep_for(20ms);
    const auto elapsed = evchan::test::timed([&] { CPPUNIT_ASSERT(cancelUntil(done, [&] { pair.server.cancel(); })); });
    reader.join();
    ASSERT_ERROR(std::errc::operation_canceled, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(3s));
    // Still open: the next read gets the data.
    pair.client.writeAll("c", 1);
    char byte = 0;
    pair.server.readExactly(&byte, 1);
    CPPUNIT_ASSERT_EQUAL('c', byte);
  }

  void testCancelEndsAWriteOnAFullRing() {
    ShmListener listener = ShmListener::listen(uniqueName("cancel-write"));
    Pair pair = connectPair(listener, 4096);
    std::atomic<bool> done{false};
    std::error_code ec;
    std::size_t written = 0;
    std::thread writer([&] {
      std::vector<char> data(10000, 'w');
      written = pair.client.writeAll(data.data(), data.size(), ec);
      done = true;
    });
    std::this_thread::sleep_for(20ms);
    CPPUNIT_ASSERT(cancelUntil(done, [&] { pair.client.cancel(); }));
    writer.join();
    ASSERT_ERROR(std::errc::operation_canceled, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{4096}, written);
    std::vector<char> got(4096);
    pair.server.readExactly(got.data(), got.size());
    pair.client.writeAll("after", 5);
    char after[5];
    pair.server.readExactly(after, 5);
    CPPUNIT_ASSERT_EQUAL(std::string("after"), std::string(after, 5));
  }

  void testCancelEndsAReadInATask() {
    ShmListener listener = ShmListener::listen(uniqueName("cancel-task"));
    Pair pair = connectPair(listener);
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    std::atomic<bool> firstDone{false};
    std::atomic<int> ticks{0};
    std::error_code first, second;
    char byte = 0;
    TaskHandle ticker = channel->spawn([&] {
      while (!firstDone.load()) {
        evchan::this_task::sleepFor(1ms);
        ++ticks;
      }
    });
    std::atomic<int> ticksAtRead{-1};
    int ticksWhileWaiting = 0;
    TaskHandle reader = channel->spawn([&] {
      char ignored;
      // Nothing else runs on the one worker until the read suspends.
      ticksAtRead = ticks.load();
      pair.server.readSome(&ignored, 1, first);
      ticksWhileWaiting = ticks.load() - ticksAtRead.load();
      firstDone = true;
      pair.server.readSome(&byte, 1, second);
    });
    // Cancelled once the ticker has ticked more than 5 times since the read
    // began, not after a fixed time: under load the reader may start late.
    const bool ticked = evchan::test::eventually([&] {
      const int atRead = ticksAtRead.load();
      return atRead >= 0 && ticks.load() > atRead + 5;
    });
    CPPUNIT_ASSERT_MESSAGE("the ticker stopped while the task waited in readSome", ticked);
    CPPUNIT_ASSERT(cancelUntil(firstDone, [&] { pair.server.cancel(); }));
    pair.client.writeAll("t", 1);
    joinWithin(reader);
    joinWithin(ticker);
    ASSERT_ERROR(std::errc::operation_canceled, first);
    ASSERT_NO_ERROR(second);
    CPPUNIT_ASSERT_EQUAL('t', byte);
    // The worker ran the ticker while the reader waited.
    CPPUNIT_ASSERT_MESSAGE("the ticker ran " + std::to_string(ticksWhileWaiting) + " times", ticksWhileWaiting > 5);
  }

  void testCancelWithoutWaiterIsHarmless() {
    ShmListener listener = ShmListener::listen(uniqueName("cancel-idle"));
    Pair pair = connectPair(listener);
    pair.server.cancel();
    pair.server.setTimeout(150ms);
    std::error_code ec;
    char byte;
    const auto elapsed = evchan::test::timed([&] { pair.server.readSome(&byte, 1, ec); });
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed >= 140ms);
    ShmStream closed;
    closed.cancel();
  }

  // One byte a round, written and cancelled at once: each arrives once.
  void testCancelRacingCompletingReads() {
    ShmListener listener = ShmListener::listen(uniqueName("cancel-race"));
    Pair pair = connectPair(listener);
    evchan::test::CancelRace race(2000);
    std::thread reader([&] { race.read(pair.server); });
    race.writeAndCancel(pair.client, pair.server);
    reader.join();
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.received.load());
  }

  // The peer process dies while a task is suspended on the doorbell.
  void testTaskReaderSeesPeerKilled() {
    PeerConnection connection("send-forever", "task-killed");
    ShmStream& stream = connection.stream;
    PeerProcess& peer = connection.peer;
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    std::atomic<std::size_t> received{0};
    std::error_code ec;
    TaskHandle reader = channel->spawn([&] {
      std::vector<char> buffer(kChunk);
      while (!ec) received += stream.readSome(buffer.data(), buffer.size(), ec);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return received.load() > (std::size_t{4} << 20); }));
    peer.kill9();
    joinWithin(reader);
    ASSERT_ERROR(std::errc::connection_reset, ec);
  }

 private:
  static ShmStream acceptWithin(ShmListener& listener) {
    listener.setTimeout(kPatience);
    ShmStream stream = listener.accept();
    stream.setTimeout(kPatience);
    return stream;
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ShmStreamTest);

// ------------------------------------------------------------ stream algorithms
// Stream's loops and BufferedReader over ShmStream (test/support/stream_suite.h).
namespace {

struct ShmStreams {
  static const char* name() { return "ShmStream"; }
  static evchan::test::StreamPair make() { return makeWithRings(0); }
  // The smallest rings: 4 KiB fill the stream.
  static evchan::test::StreamPair makeSmallBuffered() { return makeWithRings(4096); }
  static evchan::test::StreamPair makeWithRings(std::size_t ringSize) {
    ShmListener listener = ShmListener::listen(uniqueName("stream-suite"));
    listener.setTimeout(30s);
    std::error_code ec;
    ShmStream client = ringSize == 0 ? ShmStream::connect(listener.name(), 30s)
                                     : ShmStream::connect(listener.name(), 30s, ringSize, ec);
    CPPUNIT_ASSERT_MESSAGE("connect: " + ec.message(), !ec);
    ShmStream server = listener.accept();
    client.setTimeout(30s);
    server.setTimeout(30s);
    return {std::make_unique<ShmStream>(std::move(client)), std::make_unique<ShmStream>(std::move(server))};
  }
};

}  // namespace

CPPUNIT_TEST_SUITE_REGISTRATION(evchan::test::StreamSuite<ShmStreams>);
