// SPDX-License-Identifier: Apache-2.0
// ShmStream: a byte stream over two shared-memory rings, with doorbells on
// Unix sockets for the times one side has to sleep.
#include <evchan/shm_stream.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>

#include <evchan/error.h>
#include <evchan/socket_events.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "poller/deadline.h"
#include "linux/shm_connection.h"
#include "linux/unix_peer.h"
#include "posix/unix_socket.h"
#include "net/closed_under_mark.h"
#include "net/pieces.h"
#include "net/shm_gate.h"
#include "net/socket_call.h"
#include "posix/adopted_socket.h"
#include "task/await.h"

namespace evchan {

using detail::Deadline;
using detail::ShmConnection;
using detail::ShmLane;

namespace {

// After publishing data (or room, or the closed flag): rings the peer's
// bell if it sleeps.  All of these are sequentially consistent, as are the
// sleeper's store of its flag and its second look at the ring: in their
// single total order either our look at the flag comes after its store
// (we ring) or our publication comes before its look (it does not sleep).
void wakeIfWaiting(std::atomic<std::uint32_t>& waiting, int bell) {
  if (waiting.load(std::memory_order_seq_cst) != 0 && waiting.exchange(0, std::memory_order_seq_cst) != 0)
    detail::ringBell(bell);
}

}  // namespace

namespace detail {

std::unique_ptr<ShmConnection> ShmConnection::make(Segment segment, ShmRole role, int dataBellFd, int spaceBellFd,
                                                   const std::string& peer, std::error_code& ec) noexcept {
  auto connection = std::make_unique<ShmConnection>();
  connection->segment = segment;
  connection->peer = peer;
  const std::size_t ring = segment.ringSize;
  unsigned char* ring0 = segmentBytes(segment, kHeaderSize);
  unsigned char* ring1 = segmentBytes(segment, kHeaderSize + ring);
  RingIndices* indices = segment.header->rings;
  if (role == ShmRole::Connecting) {
    connection->in = RingReader(&indices[1], ring1, ring);
    connection->out = RingWriter(&indices[0], ring0, ring);
  } else {
    connection->in = RingReader(&indices[0], ring0, ring);
    connection->out = RingWriter(&indices[1], ring1, ring);
  }
  // Each descriptor is recorded once its bell owns it: a failed adoption
  // closed it, and the destructor must not ring a number since reused.
  connection->dataBell = adoptSocketDescriptor(dataBellFd, peer, ec);
  if (ec) {
    ::close(spaceBellFd);
    return nullptr;  // the destructor unmaps the segment
  }
  connection->dataBellFd = dataBellFd;
  connection->spaceBell = adoptSocketDescriptor(spaceBellFd, peer, ec);
  if (ec) return nullptr;
  connection->spaceBellFd = spaceBellFd;
  return connection;
}

ShmConnection::~ShmConnection() {
  if (segment.header != nullptr) {
    // Flags before the sockets close: a peer woken by their end of file
    // reads them and reports end_of_stream or broken_pipe, not a reset.
    out.indices().producerFlags.fetch_or(kSideClosed, std::memory_order_seq_cst);
    in.indices().consumerFlags.fetch_or(kSideClosed, std::memory_order_seq_cst);
    // And a ring for a peer's call asleep on either bell: their end of
    // file comes only once no process holds our ends, and a child forked
    // since (a pre-forked worker, a helper) holds copies until it exits.
    if (dataBellFd >= 0) wakeIfWaiting(out.indices().consumerWaiting, dataBellFd);
    if (spaceBellFd >= 0) wakeIfWaiting(in.indices().producerWaiting, spaceBellFd);
  }
  dataBell.close();
  spaceBell.close();
  if (heldDoorbell != 0) releaseDoorbell(heldDoorbell);
  unmapSegment(segment);
}

void ShmConnection::cancelCalls() noexcept {
  const std::lock_guard<std::mutex> lock(cancelLock);
  cancels.fetch_add(1, std::memory_order_release);
  dataBell.cancel();
  spaceBell.cancel();
}

}  // namespace detail

namespace {

// Spinning on an empty (or full) ring before sleeping saves the peer a
// doorbell and us a scheduler wake-up (several microseconds each) when the
// peer answers quickly, which it does when it runs on another CPU.  When
// it does not (the machine has fewer free CPUs than runnable threads, or
// the peer is simply slow), every spin is wasted, and worse: a peer that
// needs this very CPU waits for the spin to end.  So the budget adapts per
// direction: a spin that ends in data grows it (up to kMaxSpinNs), one that
// ends in sleep halves it, down to no spinning at all; after kProbeAfter
// sleeps without spinning, one spin probes whether things changed.  The
// probe is long enough to cover the peer's own wake-up: when both sides
// have stopped spinning, each answer needs a doorbell, and a short probe
// would always fail and keep both sleeping.
// (Yielding the CPU while spinning was tried: on a busy machine a
// sched_yield() can hand a whole time slice to another process.)
constexpr std::int64_t kMaxSpinNs = 50000;
constexpr std::int64_t kProbeSpinNs = 20000;
constexpr std::int64_t kMinSpinNs = 2000;
constexpr unsigned kProbeAfter = 64;

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spins until `ready()` or the budget is spent; true if ready.  Adjusts
// the budget by the outcome.
template <class Ready>
bool spinUntil(detail::AdaptiveSpin& spin, Ready&& ready) {
  std::int64_t budget = spin.budgetNs;
  if (budget == 0) {
    if (++spin.sleepsSinceProbe < kProbeAfter) return false;
    spin.sleepsSinceProbe = 0;
    budget = kProbeSpinNs;
  }
  const auto start = detail::Clock::now();
  const auto until = detail::saturatingAdd(start, std::chrono::nanoseconds(budget));
  for (;;) {
    // A few pauses (tens of nanoseconds each) between looks at the clock.
    for (int i = 0; i < 16; ++i) {
      if (ready()) {
        // Enough room to cover a wait somewhat longer than this one.
        const std::int64_t waited = std::chrono::duration_cast<std::chrono::nanoseconds>(detail::Clock::now() - start).count();
        spin.budgetNs = std::min(kMaxSpinNs, std::max({spin.budgetNs, 2 * waited, kMinSpinNs}));
        return true;
      }
      cpuRelax();
    }
    if (detail::Clock::now() >= until) {
      spin.budgetNs /= 2;
      if (spin.budgetNs < 500) spin.budgetNs = 0;
      return false;
    }
  }
}

// The time left until `deadline` as a TcpSocket timeout.
Duration remaining(Deadline deadline) {
  if (deadline == detail::kNoDeadline) return kInfiniteTimeout;
  const auto left = deadline - detail::Clock::now();
  return left > Duration::zero() ? std::chrono::duration_cast<Duration>(left) : Duration::zero();
}

bool writeShut(const ShmConnection& c) {
  return (c.writeGate.load(std::memory_order_relaxed) & ShmConnection::kWriteShut) != 0;
}

// Sleeps on the reader's bell of `c` (the writer's when `writing`) until
// the peer rings it, `deadline` passes, the peer is gone (its end of file
// sets the direction's peerGone flag), a cancel() or close() comes after
// the caller's call began, at the cancel mark `startedAt`, or, for a
// write, shutdownWrite() comes.  Clears the direction's waiting flag,
// which the caller set, whatever woke us.
std::error_code sleepOnBell(ShmConnection& c, bool writing, Deadline deadline, std::uint64_t startedAt) {
  TcpSocket& bell = writing ? c.spaceBell : c.dataBell;
  const int bellFd = writing ? c.spaceBellFd : c.dataBellFd;
  std::atomic<std::uint32_t>& waiting =
      writing ? c.out.indices().producerWaiting : c.in.indices().consumerWaiting;
  bool& peerGone = writing ? c.writePeerGone : c.readPeerGone;
  char wakeUps[64];  // drains several stale rings at once
  std::error_code ec;
  // The call on the bell begins at the bell's cancel generation now, and
  // a cancel() after the mark ends ours, under the lock that makes both
  // one moment (see ShmConnection::cancels).
  std::unique_lock<std::mutex> lock(c.cancelLock);
  const bool ended = c.cancels.load(std::memory_order_relaxed) != startedAt || (writing && writeShut(c));
  detail::SocketCall call(detail::SocketAccess::slot(bell));
  lock.unlock();
  if (ended) {
    ec = std::make_error_code(std::errc::operation_canceled);
  } else if (call.state() == nullptr) {
    ec = Errc::not_open;
  } else if (inTask()) {
    // A ReadEvent on the bell: the task is suspended, its worker runs others.
    bell.setTimeout(remaining(deadline), ec);
    ReadEvent read(bell, wakeUps, sizeof wakeUps);
    if (!ec && !detail::tryInTask(read, ec) && !call.awaitInTask(read, ec)) {
      ec = makeAprError(APR_TIMEUP);  // a zero timeout left: no wait
    }
    if (!ec && read.bytesTransferred() == 0) ec = Errc::end_of_stream;
  } else if (!(ec = call.waitOnThread(false, deadline))) {
    // A thread polls first (the ring was just seen empty, so a bell is
    // unlikely to be there yet): one system call fewer than try-then-wait.
    const ssize_t n = recv(bellFd, wakeUps, sizeof wakeUps, MSG_DONTWAIT);
    if (n == 0) {
      ec = Errc::end_of_stream;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      ec = std::error_code(errno, std::generic_category());
    }
  }
  waiting.store(0, std::memory_order_relaxed);
  // End of file or a reset: the peer's process is gone (or it closed),
  // which the caller tells apart by the closed flags.  Anything else (a
  // timeout, a cancel, a socket already watched by another channel) is
  // the caller's.
  if (ec == Errc::end_of_stream || ec == std::errc::connection_reset || ec == std::errc::broken_pipe) {
    peerGone = true;
    return {};
  }
  return ec;
}

// The end of our data, for the peer's reader: it reads end_of_stream
// once the ring is empty.
void publishWriteEnd(ShmConnection& c) {
  detail::RingIndices& ring = c.out.indices();
  ring.producerFlags.fetch_or(detail::kSideClosed, std::memory_order_seq_cst);
  wakeIfWaiting(ring.consumerWaiting, c.dataBellFd);
}

// Leaves the write gate (below); the last write to leave after
// shutdownWrite() publishes the end.
void leaveWrite(ShmConnection& c) {
  if (c.writeGate.fetch_sub(1, std::memory_order_acq_rel) == (ShmConnection::kWriteShut | 1)) publishWriteEnd(c);
}

// A write holds the gate while it may publish, so that shutdownWrite()'s
// end of the data goes out after the write's last byte, never between
// its check and its publication: the reader would read end_of_stream,
// and then data.  False (nothing held) once the write side is shut.
bool enterWrite(ShmConnection& c) {
  if ((c.writeGate.fetch_add(1, std::memory_order_acq_rel) & ShmConnection::kWriteShut) == 0) return true;
  leaveWrite(c);
  return false;
}

// Each direction is a ring with one reader and one writer, which two
// reads (or two writes) at once would corrupt: the one that finds the
// other inside is refused, as a second task's read of a TcpSocket is.
std::error_code checkLane(const detail::ShmPin& pin) {
  if (pin.get() == nullptr) return Errc::not_open;
  if (pin.laneShared()) return Errc::socket_busy;
  return {};
}

std::error_code checkBuffer(const detail::ShmPin& pin, const void* buffer, std::size_t size) {
  if (const std::error_code ec = checkLane(pin)) return ec;
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  return {};
}

// A call about to fail with timed_out looks at its bell once more: only
// a sleep reads it, so a caller polling with a zero timeout (or one so
// short that it passes before the sleep) would never learn that the peer
// is gone (its end of file there).  At most once a millisecond per
// direction (`lookedAt`), so that a busy poller does not pay a system
// call per empty poll.  True, with `peerGone` set, if it is gone.
bool peerGoneFromBell(int bellFd, bool& peerGone, std::chrono::steady_clock::time_point& lookedAt) {
  if (peerGone) return false;  // reported already
  const auto now = std::chrono::steady_clock::now();
  if (now - lookedAt < std::chrono::milliseconds(1)) return false;
  lookedAt = now;
  char wakeUps[64];  // stale rings: nobody waits for them now
  const ssize_t n = recv(bellFd, wakeUps, sizeof wakeUps, MSG_DONTWAIT);
  peerGone = n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE));
  return peerGone;
}

// A read of the connection `c`, ended by a cancel() after `startedAt`:
// waits until take(ec), which takes what is ready from c.in, takes at
// least one byte, and returns its count.
template <typename Take>
std::size_t readFrom(ShmConnection& c, Stream::CancelMark startedAt, Take&& take, std::error_code& ec) noexcept {
  if ((ec = c.readFailure) || detail::fairnessYield(ec)) return 0;
  detail::RingIndices& ring = c.in.indices();
  bool spun = false;
  Deadline deadline{};
  for (;;) {
    // The flag first: data written before it was set is then visible below.
    const bool closed = (ring.producerFlags.load(std::memory_order_seq_cst) & detail::kSideClosed) != 0;
    const std::size_t n = take(ec);
    if (ec) {
      c.readFailure = ec;
      return 0;
    }
    if (n > 0) return n;
    if (closed) {
      ec = Errc::end_of_stream;
      return 0;
    }
    if (c.readPeerGone) {
      ec = std::make_error_code(std::errc::connection_reset);
      return 0;
    }
    const Duration timeout = c.timeout.load(std::memory_order_relaxed);
    if (timeout == Duration::zero()) {
      if (peerGoneFromBell(c.dataBellFd, c.readPeerGone, c.readBellLookedAt)) continue;
      ec = std::make_error_code(std::errc::timed_out);
      return 0;
    }
    if (!spun) {
      spun = true;
      deadline = detail::deadlineAfter(timeout);
      std::error_code ignored;  // a bad index is reported by read() above
      if (spinUntil(c.readSpin, [&] {
            return c.in.available(ignored) != 0 || ignored ||
                   (ring.producerFlags.load(std::memory_order_relaxed) & detail::kSideClosed) != 0;
          }))
        continue;
    }
    ring.consumerWaiting.store(1, std::memory_order_seq_cst);
    std::error_code look;
    if (c.in.available(look) != 0 || look ||
        (ring.producerFlags.load(std::memory_order_seq_cst) & detail::kSideClosed) != 0) {
      ring.consumerWaiting.store(0, std::memory_order_relaxed);
      continue;
    }
    if ((ec = sleepOnBell(c, /*writing=*/false, deadline, startedAt))) {
      if (ec == std::errc::timed_out && peerGoneFromBell(c.dataBellFd, c.readPeerGone, c.readBellLookedAt)) {
        ec.clear();  // take() reports into it: a stale error would read as its own
        continue;
      }
      return 0;
    }
  }
}

// writeTo() inside the write gate.
template <typename Put>
std::size_t writeHoldingGate(ShmConnection& c, Stream::CancelMark startedAt, Put&& put, std::error_code& ec) noexcept {
  detail::RingIndices& ring = c.out.indices();
  bool spun = false;
  Deadline deadline{};
  auto readerGone = [&] { return (ring.consumerFlags.load(std::memory_order_seq_cst) & detail::kSideClosed) != 0; };
  for (;;) {
    if (writeShut(c) || readerGone()) {
      ec = std::make_error_code(std::errc::broken_pipe);
      return 0;
    }
    const std::size_t n = put(ec);
    if (ec) {
      c.writeFailure = ec;
      return 0;
    }
    if (n > 0) return n;
    if (c.writePeerGone) {
      ec = std::make_error_code(std::errc::connection_reset);
      return 0;
    }
    const Duration timeout = c.timeout.load(std::memory_order_relaxed);
    if (timeout == Duration::zero()) {
      if (peerGoneFromBell(c.spaceBellFd, c.writePeerGone, c.writeBellLookedAt)) continue;
      ec = std::make_error_code(std::errc::timed_out);
      return 0;
    }
    if (!spun) {
      spun = true;
      deadline = detail::deadlineAfter(timeout);
      std::error_code ignored;
      if (spinUntil(c.writeSpin, [&] { return c.out.room(ignored) != 0 || ignored || readerGone() || writeShut(c); }))
        continue;
    }
    ring.producerWaiting.store(1, std::memory_order_seq_cst);
    std::error_code look;
    if (c.out.room(look) != 0 || look || readerGone()) {
      ring.producerWaiting.store(0, std::memory_order_relaxed);
      continue;
    }
    if ((ec = sleepOnBell(c, /*writing=*/true, deadline, startedAt))) {
      if (ec == std::errc::timed_out && peerGoneFromBell(c.spaceBellFd, c.writePeerGone, c.writeBellLookedAt)) {
        ec.clear();  // put() reports into it: a stale error would read as its own
        continue;
      }
      // shutdownWrite() ends a write asleep on a full ring as a TCP
      // socket's shutdown does: the write side is gone.
      if (ec == std::errc::operation_canceled && writeShut(c)) ec = std::make_error_code(std::errc::broken_pipe);
      return 0;
    }
  }
}

// A write to the connection `c`, ended by a cancel() after `startedAt`
// or a shutdownWrite(): waits until put(ec), which puts what fits into
// c.out, puts at least one byte, and returns its count.
template <typename Put>
std::size_t writeTo(ShmConnection& c, Stream::CancelMark startedAt, Put&& put, std::error_code& ec) noexcept {
  if ((ec = c.writeFailure) || detail::fairnessYield(ec)) return 0;
  if (!enterWrite(c)) {
    ec = std::make_error_code(std::errc::broken_pipe);
    return 0;
  }
  const std::size_t n = writeHoldingGate(c, startedAt, put, ec);
  leaveWrite(c);
  return n;
}

// readFrom() copying into `buffer`.
std::size_t copyFrom(ShmConnection& c, Stream::CancelMark startedAt, void* buffer, std::size_t size,
                     std::error_code& ec) noexcept {
  return readFrom(
      c, startedAt,
      [&](std::error_code& failed) {
        const std::size_t n = c.in.read(buffer, size, failed);
        if (n > 0) wakeIfWaiting(c.in.indices().producerWaiting, c.spaceBellFd);
        return n;
      },
      ec);
}

// writeTo() copying from `buffer`.
std::size_t copyTo(ShmConnection& c, Stream::CancelMark startedAt, const void* buffer, std::size_t size,
                   std::error_code& ec) noexcept {
  return writeTo(
      c, startedAt,
      [&](std::error_code& failed) {
        const std::size_t n = c.out.write(buffer, size, failed);
        if (n > 0) wakeIfWaiting(c.out.indices().consumerWaiting, c.dataBellFd);
        return n;
      },
      ec);
}

// The cancel mark of a call on the pinned connection (see
// ShmConnection::cancels); not_open when a close() began meanwhile.
Stream::CancelMark markOf(const detail::ShmPin& pin, std::error_code& ec) noexcept {
  // A load, not a count: the fast path stays free of further atomic writes.
  const Stream::CancelMark mark = pin.get()->cancels.load(std::memory_order_acquire);
  if (pin.closing()) ec = Errc::not_open;  // the mark may postdate close()'s cancel
  return mark;
}

}  // namespace

ShmStream::ShmStream() noexcept = default;
ShmStream::ShmStream(std::unique_ptr<ShmConnection> state) noexcept
    : gate_(state ? std::make_unique<detail::ShmGate>(std::move(state)) : nullptr) {}
ShmStream::~ShmStream() = default;
ShmStream::ShmStream(ShmStream&& other) noexcept = default;
ShmStream& ShmStream::operator=(ShmStream&& other) noexcept = default;

ShmStream ShmStream::connect(const std::string& name, Duration timeout, std::size_t ringSize,
                             std::error_code& ec) noexcept {
  if (timeout < Duration::zero()) {
    ec = Errc::negative_timeout;
    return ShmStream();
  }
  if (!detail::validRingSize(ringSize)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return ShmStream();
  }
  const int control = detail::connectUnix(name, detail::deadlineAfter(timeout), ec);
  if (control < 0) return ShmStream();
  detail::Segment segment = detail::createSegment(ringSize, ec);
  int spacePair[2] = {-1, -1};
  if (!ec && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, spacePair) != 0)
    ec = std::error_code(errno, std::generic_category());
  if (!ec) {
    const detail::ShmHello hello = {detail::kHelloMagic, detail::kSegmentVersion, 0};
    const int passed[2] = {segment.fd, spacePair[1]};
    ec = detail::sendWithDescriptors(control, &hello, sizeof hello, passed, 2);
  }
  // The peer has its own copies now (or never will): ours can go.
  if (segment.fd >= 0) ::close(segment.fd);
  if (spacePair[1] >= 0) ::close(spacePair[1]);
  if (ec) {
    if (spacePair[0] >= 0) ::close(spacePair[0]);
    ::close(control);
    detail::unmapSegment(segment);
    return ShmStream();
  }
  auto state = ShmConnection::make(segment, detail::ShmRole::Connecting, control, spacePair[0], name, ec);
  return ShmStream(std::move(state));
}

ShmStream ShmStream::connect(const std::string& name, Duration timeout, std::error_code& ec) noexcept {
  return connect(name, timeout, kDefaultRingSize, ec);
}

ShmStream ShmStream::connect(const std::string& name, Duration timeout) {
  std::error_code ec;
  ShmStream stream = connect(name, timeout, ec);
  throwIfError(ec, "connect", name);
  return stream;
}

// A mark is the count of cancel()s (ShmConnection::cancels) plus one
// while the stream is open, 0 once it is closed or closing (as
// StreamSocket's): a step of readExactly(), writeAll() or a BufferedReader
// call that finds the stream closed though it was open when the call
// began was ended by a close(), which cancels it (operation_canceled), as
// it does a single call; not_open is for calls begun after the close.
// Taking a mark is no read or write: another thread may take one while a
// call of that direction is inside (TlsStream's writer takes its reads'
// mark), so it pins the Other lane, which refuses nobody.
Stream::CancelMark ShmStream::cancelMark(bool) const noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Other);
  if (pin.get() == nullptr) return 0;
  std::error_code closing;
  const CancelMark generation = markOf(pin, closing);
  return closing ? 0 : generation + 1;
}

namespace {

// The count a step under `mark` sleeps from: the mark's, or for a
// mark taken while the stream was closed (it was opened since, by a move
// into it), the current one, as a call of its own.
Stream::CancelMark cancelsSince(const detail::ShmPin& pin, Stream::CancelMark mark, std::error_code& ec) noexcept {
  return mark != 0 ? mark - 1 : markOf(pin, ec);
}

}  // namespace

std::size_t ShmStream::readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Read);
  if ((ec = checkBuffer(pin, buffer, size)) || size == 0) return 0;
  const CancelMark mark = markOf(pin, ec);
  return ec ? 0 : copyFrom(*pin.get(), mark, buffer, size, ec);
}

std::size_t ShmStream::readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Read);
  if (pin.get() == nullptr) {
    ec = detail::closedUnderMark(mark);
    return 0;
  }
  if ((ec = checkBuffer(pin, buffer, size)) || size == 0) return 0;
  const CancelMark startedAt = cancelsSince(pin, mark, ec);
  return ec ? 0 : copyFrom(*pin.get(), startedAt, buffer, size, ec);
}

std::string ShmStream::peerName() const {
  const detail::ShmPin pin(gate_.get(), ShmLane::Other);
  return pin.get() != nullptr ? pin.get()->peer : std::string();
}

std::size_t ShmStream::writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Write);
  if ((ec = checkBuffer(pin, buffer, size)) || size == 0) return 0;
  const CancelMark mark = markOf(pin, ec);
  return ec ? 0 : copyTo(*pin.get(), mark, buffer, size, ec);
}

std::size_t ShmStream::writeSomeSince(CancelMark mark, const ConstBuffer* buffers, std::size_t count,
                                      std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Write);
  if (pin.get() == nullptr) {
    ec = detail::closedUnderMark(mark);
    return 0;
  }
  if ((ec = checkLane(pin)) || (ec = detail::checkPieces(buffers, count))) return 0;
  // As Stream's gather writeSome(): the first non-empty piece.
  for (std::size_t i = 0; i < count; ++i) {
    if (buffers[i].size == 0) continue;
    const CancelMark startedAt = cancelsSince(pin, mark, ec);
    return ec ? 0 : copyTo(*pin.get(), startedAt, buffers[i].data, buffers[i].size, ec);
  }
  return 0;
}

void ShmStream::shutdownWrite(std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Other);
  if (pin.get() == nullptr) {
    ec = Errc::not_open;
    return;
  }
  ec.clear();
  ShmConnection& c = *pin.get();
  const std::uint32_t before = c.writeGate.fetch_or(ShmConnection::kWriteShut, std::memory_order_acq_rel);
  if ((before & ShmConnection::kWriteShut) != 0) return;  // shut already
  if (before == 0) {
    publishWriteEnd(c);
    return;
  }
  // A write under way publishes the end as it leaves; one asleep on a
  // full ring is woken to leave now, one about to sleep sees the flag
  // (sleepOnBell()).
  const std::lock_guard<std::mutex> lock(c.cancelLock);
  c.spaceBell.cancel();
}

ConstBuffer ShmStream::readView(std::size_t maxSize, std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Read);
  ShmConnection* c = pin.get();
  if ((ec = checkLane(pin))) return {};
  c->in.consume(0);  // a view lent before ends here
  ec.clear();
  if (maxSize == 0) return {};
  const CancelMark mark = markOf(pin, ec);
  if (ec) return {};
  const unsigned char* bytes = nullptr;
  const std::size_t n =
      readFrom(*c, mark, [&](std::error_code& failed) { return c->in.peek(&bytes, maxSize, failed); }, ec);
  return n > 0 ? ConstBuffer{bytes, n} : ConstBuffer{};
}

ConstBuffer ShmStream::readView(std::size_t maxSize) {
  std::error_code ec;
  const ConstBuffer view = readView(maxSize, ec);
  throwIfError(ec, "read", peerName());
  return view;
}

void ShmStream::consume(std::size_t n, std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Read);
  ShmConnection* c = pin.get();
  if ((ec = checkLane(pin))) return;
  if (!c->in.consume(n)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  if (n > 0) wakeIfWaiting(c->in.indices().producerWaiting, c->spaceBellFd);
  ec.clear();
}

void ShmStream::consume(std::size_t n) {
  std::error_code ec;
  consume(n, ec);
  throwIfError(ec, "consume", peerName());
}

ShmRoom ShmStream::writeView(std::size_t maxSize, std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Write);
  ShmConnection* c = pin.get();
  if ((ec = checkLane(pin))) return {};
  c->out.commit(0);  // room lent before ends here
  ec.clear();
  if (maxSize == 0) return {};
  const CancelMark mark = markOf(pin, ec);
  if (ec) return {};
  unsigned char* bytes = nullptr;
  const std::size_t n =
      writeTo(*c, mark, [&](std::error_code& failed) { return c->out.reserve(&bytes, maxSize, failed); }, ec);
  return n > 0 ? ShmRoom{bytes, n} : ShmRoom{};
}

ShmRoom ShmStream::writeView(std::size_t maxSize) {
  std::error_code ec;
  const ShmRoom room = writeView(maxSize, ec);
  throwIfError(ec, "write", peerName());
  return room;
}

void ShmStream::commit(std::size_t n, std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Write);
  ShmConnection* c = pin.get();
  if ((ec = checkLane(pin))) return;
  if (n == 0) {
    c->out.commit(0);  // ends the view, publishes nothing
    ec.clear();
    return;
  }
  // After shutdownWrite() the reader may have seen the end of the stream
  // already: nothing may follow it.
  if (!enterWrite(*c)) {
    c->out.commit(0);
    ec = std::make_error_code(std::errc::broken_pipe);
    return;
  }
  const bool committed = c->out.commit(n);
  if (committed) wakeIfWaiting(c->out.indices().consumerWaiting, c->dataBellFd);
  leaveWrite(*c);
  ec = committed ? std::error_code() : std::make_error_code(std::errc::invalid_argument);
}

void ShmStream::commit(std::size_t n) {
  std::error_code ec;
  commit(n, ec);
  throwIfError(ec, "commit", peerName());
}

void ShmStream::shutdownWrite() {
  std::error_code ec;
  shutdownWrite(ec);
  throwIfError(ec, "shutdown", peerName());
}

void ShmStream::cancel() noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Other);
  if (ShmConnection* c = pin.get()) c->cancelCalls();
}

void ShmStream::close() noexcept {
  if (gate_) gate_->close();
}

bool ShmStream::isOpen() const noexcept { return gate_ && gate_->open(); }

void ShmStream::setTimeout(Duration timeout, std::error_code& ec) noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Other);
  if (pin.get() == nullptr) {
    ec = Errc::not_open;
  } else if (timeout < Duration::zero()) {
    ec = Errc::negative_timeout;
  } else {
    ec.clear();
    pin.get()->timeout.store(timeout, std::memory_order_relaxed);
  }
}

void ShmStream::setTimeout(Duration timeout) {
  std::error_code ec;
  setTimeout(timeout, ec);
  throwIfError(ec, "set timeout", peerName());
}

Duration ShmStream::timeout() const noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Other);
  return pin.get() != nullptr ? pin.get()->timeout.load(std::memory_order_relaxed) : kInfiniteTimeout;
}

std::size_t ShmStream::ringSize() const noexcept {
  const detail::ShmPin pin(gate_.get(), ShmLane::Other);
  return pin.get() != nullptr ? pin.get()->segment.ringSize : 0;
}

}  // namespace evchan
