// SPDX-License-Identifier: Apache-2.0
// SignalSource on POSIX hosts: a sigaction handler writes each signal's
// number into a socket pair (the self-pipe trick), read as a TcpSocket.
// A delivery that finds the socket pair full is counted instead, and a
// nudge byte (0) tells the reader to look at the counts (below).
//
// Why a handler and not signalfd: a signalfd sees only signals blocked in
// every thread, and a worker thread started before the mask was set would
// take the default action (end the process) instead; a handler works
// whichever thread the kernel picks.  Why a socket pair and not a pipe:
// wrapped in a TcpSocket the read end waits like any socket, suspending a
// task on every backend (io_uring's recv refuses pipes and signalfds).
#include "apr/signal_source.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <mutex>

#include <evchan/error.h>
#include <evchan/tcp_socket.h>

#include "apr/apr_runtime.h"
#include "apr/fork_hooks.h"
#include "poller/deadline.h"
#include "posix/adopted_socket.h"

namespace evchan::detail {
namespace {

// Signals 1..63 (every standard and most real-time ones), one bit each.
constexpr int kSignalLimit = 64;
constexpr int kMaxSources = 64;

// What the handler reads: lock-free atomics only (async-signal-safe).
// A live source's slot holds its write end and the bits of its signals.
//
// The socket pair holds far fewer bytes than its buffer size suggests:
// Linux charges each 1-byte write a whole socket buffer (an skb, some
// 768 bytes), so about 278 deliveries fill a 208 KiB send buffer.  A
// delivery whose write fails is counted in `unwritten` rather than lost.
// The counts are 64-bit: no run of signals overflows one.
struct Slot {
  std::atomic<int> fd{-1};
  std::atomic<std::uint64_t> signals{0};
  std::atomic<std::uint64_t> unwritten[kSignalLimit] = {};
};
Slot slots[kMaxSources];
std::atomic<int> handlersRunning{0};
// Written after a count: no signal (0 is none), only "look at the counts".
constexpr unsigned char kLookAtTheCounts = 0;
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<std::uint64_t>::is_always_lock_free,
              "the signal handler may use lock-free atomics only");

// The rest changes under the registry lock, never in the handler.
std::mutex registryLock;
int catchers[kSignalLimit];                 // live sources catching each signal
struct sigaction previous[kSignalLimit];    // the disposition found by the first

// The registry lock is free across a fork().  In the child the parent's
// sets stay the parent's: their slots keep their descriptors (the child's
// copies of those sets still close them) but catch nothing, the
// dispositions they installed are put back, and a set the child makes
// starts afresh.  Otherwise a signal sent to the child would be written
// to the parent's set, a socket pair the two processes share.  The forking
// thread blocks every signal from before the fork until the child's reset
// is done: a signal sent to the child at once waits, and then meets the
// disposition put back, rather than the parent's handler.
sigset_t maskBeforeFork;  // the forking thread's, under the registry lock
void lockRegistry() {
  registryLock.lock();
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &maskBeforeFork);
}
void unlockRegistry() {
  pthread_sigmask(SIG_SETMASK, &maskBeforeFork, nullptr);
  registryLock.unlock();
}
void resetRegistryInChild() {
  for (Slot& slot : slots) slot.signals.store(0);
  for (int signal = 1; signal < kSignalLimit; ++signal) {
    if (catchers[signal] == 0) continue;
    ::sigaction(signal, &previous[signal], nullptr);
    catchers[signal] = 0;
  }
  handlersRunning.store(0);  // a handler running in a parent thread at the fork
  unlockRegistry();
}

// Non-blocking, so a full socket pair fails the write (EAGAIN, the only
// failure a live slot's descriptor has) and the count keeps the delivery.
// The buffer was full at the write, but the reader may have read it all
// since, found no count yet and gone to sleep: the nudge, written after
// the count, wakes it to look again.  A nudge that fails finds bytes
// waiting, written before it: the reader reads them and then the counts.
void deliver(Slot& slot, int signal) noexcept {
  const int fd = slot.fd.load();
  const unsigned char number = static_cast<unsigned char>(signal);
  if (::write(fd, &number, 1) == 1) return;
  slot.unwritten[signal].fetch_add(1);
  const ssize_t nudged = ::write(fd, &kLookAtTheCounts, 1);
  (void)nudged;  // failed: bytes are waiting, as above
}

extern "C" void forwardSignal(int signal) {
  const int savedErrno = errno;
  handlersRunning.fetch_add(1);
  const std::uint64_t bit = std::uint64_t(1) << signal;
  for (Slot& slot : slots) {
    if ((slot.signals.load() & bit) != 0) deliver(slot, signal);
  }
  handlersRunning.fetch_sub(1);
  errno = savedErrno;
}

// The signals nothing but their default may handle: uncatchable, or the
// faults the stack-overflow report and debuggers rely on.
bool catchable(int signal) noexcept {
  if (signal <= 0 || signal >= kSignalLimit || signal >= NSIG) return false;
  switch (signal) {
    case SIGKILL:
    case SIGSTOP:
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGTRAP:
      return false;
    default:
      return true;
  }
}

std::error_code lastError() { return std::error_code(errno, std::generic_category()); }

// Both ends non-blocking and close-on-exec; the handler must never block.
bool makeSocketPair(int ends[2], std::error_code& ec) {
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
  // In one step where the system can: a fork and exec on another thread
  // meanwhile must not inherit the ends.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, ends) == 0) return true;
#endif
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, ends) != 0) {
    ec = lastError();
    return false;
  }
  for (int i = 0; i < 2; ++i) {
    if (::fcntl(ends[i], F_SETFL, ::fcntl(ends[i], F_GETFL) | O_NONBLOCK) != 0 ||
        ::fcntl(ends[i], F_SETFD, FD_CLOEXEC) != 0) {
      ec = lastError();
      ::close(ends[0]);
      ::close(ends[1]);
      return false;
    }
  }
  return true;
}


class PipeSignalSource final : public SignalSource {
 public:
  PipeSignalSource(TcpSocket reader, int readerFd, int writer) noexcept
      : reader_(std::move(reader)), readerFd_(readerFd), writer_(writer) {}
  ~PipeSignalSource() override {
    stopCatching();
    ::close(writer_);
  }

  // Registers the source; false with `ec` set if it cannot be.
  bool startCatching(std::uint64_t signals, std::error_code& ec) {
    static const bool forkHandled = holdAcrossFork(&lockRegistry, &unlockRegistry, &resetRegistryInChild);
    (void)forkHandled;
    std::lock_guard<std::mutex> lock(registryLock);
    for (int i = 0; i < kMaxSources && slot_ == nullptr; ++i) {
      if (slots[i].fd.load() == -1) slot_ = &slots[i];
    }
    if (slot_ == nullptr) {
      ec = std::make_error_code(std::errc::too_many_files_open);
      return false;
    }
    slot_->fd.store(writer_);
    for (auto& count : slot_->unwritten) count.store(0);  // a previous source's
    slot_->signals.store(signals);  // from here the handler writes to us
    for (int signal = 1; signal < kSignalLimit; ++signal) {
      if ((signals & (std::uint64_t(1) << signal)) == 0 || catchers[signal]++ > 0) continue;
      struct sigaction action = {};
      action.sa_handler = forwardSignal;
      action.sa_flags = SA_RESTART;
      sigemptyset(&action.sa_mask);
      if (::sigaction(signal, &action, &previous[signal]) != 0) {
        ec = lastError();
        --catchers[signal];
        slot_->signals.store(signals & ((std::uint64_t(1) << signal) - 1));  // what was installed
        releaseLocked();
        return false;
      }
    }
    return true;
  }

  int next(Duration timeout, std::error_code& ec) noexcept override {
    // The bytes first: they are in the order of arrival, and a count
    // grows only once a write found them filling the buffer.  So the
    // counted deliveries come after those earlier (among different
    // signals, maybe after some later ones too: their order is lost with
    // their bytes).  A nudge is no signal: look again, within the time
    // left.
    const Deadline deadline = deadlineAfter(timeout);
    for (;;) {
      if (const int signal = takeUnwritten()) return signal;
      const int signal = readByte(deadline, ec);
      if (ec || signal != kLookAtTheCounts) return ec ? 0 : signal;
    }
  }

 private:
  // The next byte, waiting until `deadline` for it: in a task a
  // ReadEvent suspends it; on a thread poll(2) blocks it.
  int readByte(Deadline deadline, std::error_code& ec) noexcept {
    const Duration left = deadline == kNoDeadline ? kInfiniteTimeout
                                                  : std::max(Duration::zero(), Duration(deadline - Clock::now()));
    reader_.setTimeout(left, ec);
    if (ec) return 0;
    unsigned char byte = 0;
    reader_.readSome(&byte, 1, ec);
    return ec ? 0 : byte;
  }

  // A counted delivery once no byte is left to read, else 0.  A count
  // that grows after the look below is followed by a nudge (or by a
  // failed one, bytes waiting then): the read that follows does not
  // sleep through it.
  int takeUnwritten() noexcept {
    for (int signal = 1; signal < kSignalLimit; ++signal) {
      std::atomic<std::uint64_t>& count = slot_->unwritten[signal];
      if (count.load() == 0) continue;
      int queued = 0;
      if (::ioctl(readerFd_, FIONREAD, &queued) != 0 || queued > 0) return 0;
      count.fetch_sub(1);  // only this wait takes; handlers only add
      return signal;
    }
    return 0;
  }

  void stopCatching() {
    if (slot_ == nullptr) return;
    std::lock_guard<std::mutex> lock(registryLock);
    releaseLocked();
  }

  // Puts back the dispositions this source was the last to need, then
  // waits for handlers already running (they may hold our descriptor).
  void releaseLocked() {
    const std::uint64_t signals = slot_->signals.load();
    for (int signal = 1; signal < kSignalLimit; ++signal) {
      if ((signals & (std::uint64_t(1) << signal)) != 0 && --catchers[signal] == 0)
        ::sigaction(signal, &previous[signal], nullptr);
    }
    slot_->signals.store(0);
    // Sequentially consistent on both sides: a handler that counted itself
    // after this load sees the cleared bits and leaves the slot alone.
    while (handlersRunning.load() != 0) sched_yield();
    slot_->fd.store(-1);
    slot_ = nullptr;
  }

  TcpSocket reader_;
  const int readerFd_;  // reader_'s, to ask how many bytes wait
  const int writer_;
  Slot* slot_ = nullptr;
};

}  // namespace

std::unique_ptr<SignalSource> openSignalSource(const int* signals, std::size_t count, std::error_code& ec) noexcept {
  std::uint64_t wanted = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!catchable(signals[i])) {
      ec = std::make_error_code(std::errc::invalid_argument);
      return nullptr;
    }
    wanted |= std::uint64_t(1) << signals[i];
  }
  if (wanted == 0) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  int ends[2];
  if (!makeSocketPair(ends, ec)) return nullptr;
  TcpSocket reader = adoptSocketDescriptor(ends[0], "signal set", ec);
  if (ec) {
    ::close(ends[1]);
    return nullptr;
  }
  std::unique_ptr<PipeSignalSource> source;
  try {
    source = std::make_unique<PipeSignalSource>(std::move(reader), ends[0], ends[1]);
  } catch (const std::bad_alloc&) {
    ::close(ends[1]);
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
  if (!source->startCatching(wanted, ec)) return nullptr;
  return source;
}

}  // namespace evchan::detail
