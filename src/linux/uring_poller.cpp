// SPDX-License-Identifier: Apache-2.0
// The io_uring backend: the kernel performs reads, writes, accepts and
// connects and reports each one done (a completion backend).
//
// One ring per channel, shared by the pool.  Threading (README: "The
// io_uring backend"):
//  * The submission queue's user-space side is guarded by sqMutex_: any
//    thread posting an event fills an SQE under it (a few stores, no
//    syscall) and leaves it queued.
//  * One worker at a time polls (the pool's leader/follower rule).  Its
//    waitCompletions() publishes every queued SQE and waits for
//    completions in the same io_uring_enter: operations posted while it
//    was running callbacks cost no syscall of their own.
//  * A thread posting while the poller sleeps in io_uring_enter submits
//    its SQEs itself (one io_uring_enter, not waiting): the poller is not
//    woken for it, only by the completion.
//  * The completion queue is read by the polling thread only.
// File events are ring operations too (IORING_OP_READ/WRITE at their
// offset), completed through the channel's CompletionSink.
// Timers are not ring operations: they stay in the channel's own timer
// set, whose earliest deadline bounds the wait (IORING_ENTER_EXT_ARG), so
// a timer costs no SQE and cancelling one (every task timeout does) no
// kernel round trip.
#include <liburing.h>

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

#include <evchan/error.h>

#include "apr/file_state.h"
#include "linux/ring_lifetime_annotations.h"
#include "poller/datagram_access.h"
#include "poller/event_access.h"
#include "poller/poller.h"

namespace evchan::detail {
namespace {

constexpr unsigned kSubmissionEntries = 1024;
constexpr unsigned kCompletionEntries = 16384;  // more than the SQ: operations outlive their SQE
constexpr unsigned kReapBatch = 256;
// user_data of entries that complete no event.  Watches are aligned far
// beyond these, and a watch's user_data is its address (reader) or its
// address + 1 (writer); a file event's is its address + 2.
constexpr std::uint64_t kCancelTag = 0;
constexpr std::uint64_t kWakeTag = 2;
constexpr std::uint64_t kFileBit = 2;

std::uint64_t tagOf(Watch& watch, unsigned slot) noexcept {
  return reinterpret_cast<std::uintptr_t>(&watch) | (slot == kWritable ? 1u : 0u);
}

// The operations the backend relies on; a kernel lacking one is refused
// (Backend::Default then falls back to epoll).
const int kRequiredOps[] = {IORING_OP_RECV,         IORING_OP_SEND, IORING_OP_ACCEPT, IORING_OP_CONNECT,
                            IORING_OP_ASYNC_CANCEL, IORING_OP_NOP,  IORING_OP_READ,   IORING_OP_WRITE,
                            IORING_OP_SENDMSG,      IORING_OP_RECVMSG};

class UringPoller final : public Poller, public CompletionPoller {
 public:
  ~UringPoller() override {
    if (!open_) return;
    ringUnmapping();
    io_uring_queue_exit(&ring_);
  }

  std::error_code open() noexcept {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    params.cq_entries = kCompletionEntries;
    if (int rc = io_uring_queue_init_params(kSubmissionEntries, &ring_, &params); rc < 0) {
      return std::error_code(-rc, std::generic_category());  // ENOSYS, EPERM (seccomp, sysctl), ENOMEM
    }
    ringMapped();
    open_ = true;
    // Waiting with a timeout and no SQE (EXT_ARG, 5.11) and not losing
    // completions when the CQ is full (NODROP, 5.5) are needed.
    if (!(params.features & IORING_FEAT_EXT_ARG) || !(params.features & IORING_FEAT_NODROP)) {
      return std::make_error_code(std::errc::function_not_supported);
    }
    skipCancelSuccess_ = (params.features & IORING_FEAT_CQE_SKIP) != 0;
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    if (probe == nullptr) return std::make_error_code(std::errc::function_not_supported);
    bool all = true;
    for (int op : kRequiredOps) all = all && io_uring_opcode_supported(probe, op);
    io_uring_free_probe(probe);
    if (!all) return std::make_error_code(std::errc::function_not_supported);
    // Publishing SQEs ourselves (see publishLocked) relies on liburing
    // mapping SQ slot i to SQE i once at setup, as it does since 2.2.
    ownFlush_ = true;
    for (unsigned i = 0; i < *ring_.sq.kring_entries; ++i) ownFlush_ = ownFlush_ && ring_.sq.array[i] == i;
    return {};
  }

  // ---- Poller: a completion backend registers nothing with the kernel.
  Backend kind() const noexcept override { return Backend::IoUring; }
  bool edgeTriggered() const noexcept override { return true; }  // never asks for setInterest()
  std::error_code add(Watch&) noexcept override { return {}; }
  std::error_code setInterest(Watch&, unsigned) noexcept override { return {}; }
  void remove(Watch&) noexcept override {}
  std::error_code wait(std::vector<Readiness>& ready, Deadline) noexcept override {
    ready.clear();
    return std::make_error_code(std::errc::operation_not_supported);
  }
  CompletionPoller* completions() noexcept override { return this; }

  void wakeup() noexcept override {
    std::unique_lock<std::mutex> lock(sqMutex_);
    if (!waiting_) {
      wakeRequested_ = true;  // the next wait does not sleep
      return;
    }
    if (wakeQueued_) return;  // one NOP wakes it
    io_uring_sqe* sqe = sqeLocked();
    if (sqe == nullptr) return;  // the SQ is full: its submission wakes the poller anyway
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, kWakeTag);
    wakeQueued_ = true;
    enterLocked(lock);
  }

  // ---- CompletionPoller
  std::error_code submit(const SocketOperation& op, Watch& watch, unsigned slot) noexcept override {
    std::unique_lock<std::mutex> lock(sqMutex_);
    io_uring_sqe* sqe = sqeLocked();
    if (sqe == nullptr) return std::make_error_code(std::errc::resource_unavailable_try_again);
    switch (op.kind) {
      case SocketOperation::Kind::Receive: io_uring_prep_recv(sqe, op.fd, op.buffer, op.size, 0); break;
      case SocketOperation::Kind::Send: io_uring_prep_send(sqe, op.fd, op.buffer, op.size, MSG_NOSIGNAL); break;
      case SocketOperation::Kind::SendPieces: prepareSendPieces(sqe, op, watch); break;
      case SocketOperation::Kind::Accept:
        io_uring_prep_accept(sqe, op.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
      case SocketOperation::Kind::Connect:
        io_uring_prep_connect(sqe, op.fd, static_cast<const sockaddr*>(op.address), op.addressLength);
        break;
      case SocketOperation::Kind::ReceiveMessage:
        // Descriptors received are close-on-exec, as recvmsg(2) makes them.
        io_uring_prep_recvmsg(sqe, op.fd, messageHeader(op, true), op.scratch->control ? MSG_CMSG_CLOEXEC : 0);
        break;
      case SocketOperation::Kind::SendMessage:
        io_uring_prep_sendmsg(sqe, op.fd, messageHeader(op, false), MSG_NOSIGNAL);
        break;
    }
    io_uring_sqe_set_data64(sqe, tagOf(watch, slot));
    inFlight_.fetch_add(1, std::memory_order_relaxed);
    // The poller sleeps in the kernel and would not see this SQE before
    // it wakes: start the operation now.  Otherwise it goes in the
    // poller's next io_uring_enter, with everything else queued.
    if (waiting_) enterLocked(lock);
    return {};
  }

  void cancel(Watch& watch, unsigned slot) noexcept override {
    std::unique_lock<std::mutex> lock(sqMutex_);
    io_uring_sqe* sqe = sqeLocked();
    if (sqe == nullptr) return;  // cannot happen: sqeLocked() makes room
    io_uring_prep_cancel64(sqe, tagOf(watch, slot), 0);
    io_uring_sqe_set_data64(sqe, kCancelTag);
    if (skipCancelSuccess_) io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
    if (waiting_) enterLocked(lock);
  }

  bool completesFileOperations() const noexcept override { return true; }

  std::error_code submitFile(Event& event, CompletionSink& sink) noexcept override {
    const bool read = event.kind() == Event::Kind::FileRead;
    const FileState* file = read ? FileAccess::state(static_cast<FileReadEvent&>(event).file())
                                 : FileAccess::state(static_cast<FileWriteEvent&>(event).file());
    const std::uint64_t offset = read ? static_cast<FileReadEvent&>(event).offset()
                                      : static_cast<FileWriteEvent&>(event).offset();
    if (file == nullptr) return Errc::not_open;
    if (!fileOffsetFits(offset)) return std::make_error_code(std::errc::invalid_argument);
    std::unique_lock<std::mutex> lock(sqMutex_);
    io_uring_sqe* sqe = sqeLocked();
    if (sqe == nullptr) return std::make_error_code(std::errc::resource_unavailable_try_again);
    // One request moves at most what a read(2) would.
    constexpr std::size_t kMaxBytes = 0x7ffff000;
    if (read) {
      auto& r = static_cast<FileReadEvent&>(event);
      io_uring_prep_read(sqe, file->native, r.buffer(),
                         static_cast<unsigned>(std::min(readableBelowOffTEnd(offset, r.size()), kMaxBytes)), offset);
    } else {
      auto& w = static_cast<FileWriteEvent&>(event);
      io_uring_prep_write(sqe, file->native, w.buffer(), static_cast<unsigned>(std::min(w.size(), kMaxBytes)),
                          offset);
    }
    io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uintptr_t>(&event) | kFileBit);
    fileSink_.store(&sink, std::memory_order_release);  // the channel's, the same for every file event
    inFlight_.fetch_add(1, std::memory_order_relaxed);
    if (waiting_) enterLocked(lock);
    return {};
  }

  void flush() noexcept override {
    std::unique_lock<std::mutex> lock(sqMutex_);
    if (queued_ > 0) enterLocked(lock);
  }

  void finishMessage(MessageScratch& scratch) noexcept override {
    const msghdr* header = std::launder(reinterpret_cast<const msghdr*>(scratch.header));
    scratch.addressLength = static_cast<unsigned>(header->msg_namelen);
    scratch.truncated = (header->msg_flags & MSG_TRUNC) != 0;
    scratch.controlLength = header->msg_controllen;
    scratch.controlTruncated = (header->msg_flags & MSG_CTRUNC) != 0;
  }

  bool busy() const noexcept override { return inFlight_.load(std::memory_order_acquire) > 0; }
  void closeDescriptor(int fd) noexcept override { ::close(fd); }

  std::error_code waitCompletions(std::vector<Completion>& done, Deadline deadline) noexcept override {
    done.clear();
    unsigned toSubmit = 0;
    bool block;
    {
      std::lock_guard<std::mutex> lock(sqMutex_);
      block = !wakeRequested_ && io_uring_cq_ready(&ring_) == 0;
      wakeRequested_ = false;
      if (ownFlush_) {
        toSubmit = publishLocked();
      } else if (queued_ > 0) {
        submitLocked();  // two syscalls a round instead of one (see open())
      }
      waiting_ = block;
    }
    std::error_code ec;
    if (block || toSubmit > 0) ec = enter(toSubmit, block, deadline);
    {
      std::lock_guard<std::mutex> lock(sqMutex_);
      waiting_ = false;
    }
    reap(done);
    // File events go back to the channel here, outside the SQ lock.
    for (const FileCompletion& file : fileDone_) finishFile(file.event, file.result);
    fileDone_.clear();
    return ec;
  }

 private:
  // A gather send: IORING_OP_SENDMSG (never WRITEV, which raises SIGPIPE)
  // over the event's pieces, read in place as iovecs.  The header lives in
  // the watch, whose writer slot holds this send until its completion.
  static void prepareSendPieces(io_uring_sqe* sqe, const SocketOperation& op, Watch& watch) noexcept {
    static_assert(sizeof(msghdr) <= sizeof watch.sendHeader && alignof(msghdr) <= alignof(std::max_align_t),
                  "Watch::sendHeader holds a msghdr");
    static_assert(sizeof(ConstBuffer) == sizeof(iovec) && offsetof(ConstBuffer, data) == offsetof(iovec, iov_base) &&
                      offsetof(ConstBuffer, size) == offsetof(iovec, iov_len),
                  "ConstBuffer must have the layout of struct iovec");
    msghdr* header = new (watch.sendHeader) msghdr{};
    header->msg_iov = const_cast<iovec*>(reinterpret_cast<const iovec*>(op.pieces));
    header->msg_iovlen = std::min<std::size_t>(op.pieceCount, IOV_MAX);  // the rest in a later send
    io_uring_prep_sendmsg(sqe, op.fd, header, MSG_NOSIGNAL);
  }

  // One message's header, in the event's scratch with its piece and the
  // peer's address (a datagram) or the control message (descriptors): the
  // kernel reads (and, receiving, fills) them until the operation
  // completes, and the event stays in flight until then.
  static msghdr* messageHeader(const SocketOperation& op, bool receive) noexcept {
    static_assert(sizeof(msghdr) <= sizeof op.scratch->header, "MessageScratch::header holds a msghdr");
    MessageScratch& scratch = *op.scratch;
    scratch.piece = ConstBuffer{op.buffer, op.size};
    msghdr* header = new (scratch.header) msghdr{};
    header->msg_iov = reinterpret_cast<iovec*>(&scratch.piece);
    header->msg_iovlen = 1;
    if (scratch.control != nullptr) {
      header->msg_control = scratch.control;
      header->msg_controllen = scratch.controlLength;
    } else if (receive) {
      header->msg_name = scratch.address;
      header->msg_namelen = sizeof scratch.address;
    } else if (scratch.addressLength > 0) {
      header->msg_name = scratch.address;
      header->msg_namelen = scratch.addressLength;
    }
    return header;
  }

  // A free SQE, making room by submitting when the SQ is full.
  io_uring_sqe* sqeLocked() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      submitLocked();
      sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe != nullptr) ++queued_;
    return sqe;
  }

  // Makes the queued SQEs visible to the kernel (what liburing's
  // io_uring_submit does before its syscall), without the syscall.
  unsigned publishLocked() noexcept {
    io_uring_sq& sq = ring_.sq;
    if (sq.sqe_head != sq.sqe_tail) {
      sq.sqe_head = sq.sqe_tail;
      __atomic_store_n(sq.ktail, sq.sqe_tail, __ATOMIC_RELEASE);
    }
    queued_ = 0;
    // Everything the kernel has not consumed: also what an earlier enter
    // left (a submission that failed part-way), taken in order first.
    return sq.sqe_tail - __atomic_load_n(sq.khead, __ATOMIC_ACQUIRE);
  }

  void submitLocked() noexcept {
    int rc;
    do {
      rc = io_uring_submit(&ring_);
    } while (rc == -EINTR);
    queued_ = 0;
  }

  // Submits what is queued, unlocking for the syscall when we publish
  // ourselves (the kernel takes published SQEs in order, whoever enters).
  void enterLocked(std::unique_lock<std::mutex>& lock) noexcept {
    if (!ownFlush_) {
      submitLocked();
      return;
    }
    const unsigned toSubmit = publishLocked();
    lock.unlock();
    enter(toSubmit, false, kNoDeadline);
  }

  std::error_code enter(unsigned toSubmit, bool block, Deadline deadline) noexcept {
    __kernel_timespec timeout{};
    io_uring_getevents_arg arg{};
    unsigned flags = 0;
    if (block) {
      flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
      if (deadline != kNoDeadline) {
        const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
        const long long ns = left.count() > 0 ? left.count() : 0;
        timeout.tv_sec = ns / 1000000000;
        timeout.tv_nsec = ns % 1000000000;
        arg.ts = reinterpret_cast<std::uintptr_t>(&timeout);
      }
    }
    const int rc = io_uring_enter2(ring_.ring_fd, toSubmit, block ? 1 : 0, flags,
                                   block ? reinterpret_cast<sigset_t*>(&arg) : nullptr, block ? sizeof arg : 0);
    // ETIME: the deadline passed; EINTR: a signal; EBUSY/EAGAIN: the CQ
    // overflowed and the submission waits for us to reap.
    if (rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN) return {};
    return std::error_code(-rc, std::generic_category());
  }

  void reap(std::vector<Completion>& done) noexcept {
    io_uring_cqe* cqes[kReapBatch];
    for (;;) {
      const unsigned count = io_uring_peek_batch_cqe(&ring_, cqes, kReapBatch);
      if (count == 0) return;
      unsigned operations = 0;
      for (unsigned i = 0; i < count; ++i) {
        const std::uint64_t tag = cqes[i]->user_data;
        if (tag == kCancelTag) continue;  // the cancelled operation reports itself
        if (tag == kWakeTag) {
          std::lock_guard<std::mutex> lock(sqMutex_);
          wakeQueued_ = false;
          continue;
        }
        if (tag & kFileBit) {
          fileDone_.push_back(FileCompletion{reinterpret_cast<Event*>(static_cast<std::uintptr_t>(tag & ~kFileBit)),
                                             cqes[i]->res});
          ++operations;
          continue;
        }
        auto* watch = reinterpret_cast<Watch*>(static_cast<std::uintptr_t>(tag & ~std::uint64_t{1}));
        done.push_back(Completion{watch, (tag & 1) ? kWritable : kReadable, cqes[i]->res});
        ++operations;
      }
      io_uring_cq_advance(&ring_, count);
      inFlight_.fetch_sub(operations, std::memory_order_release);
      if (count < kReapBatch) return;
    }
  }

  void finishFile(Event* event, int result) noexcept {
    std::error_code ec;
    if (result < 0) {
      ec = result == -ECANCELED ? std::make_error_code(std::errc::operation_canceled) : makeAprError(-result);
    } else if (event->kind() == Event::Kind::FileRead) {
      EventAccess::transferred(static_cast<FileReadEvent&>(*event)) = static_cast<std::size_t>(result);
    } else {
      EventAccess::transferred(static_cast<FileWriteEvent&>(*event)) = static_cast<std::size_t>(result);
    }
    fileSink_.load(std::memory_order_acquire)->operationCompleted(*event, ec);
  }

  struct FileCompletion {
    Event* event;
    int result;
  };

  io_uring ring_{};
  bool open_ = false;
  std::atomic<CompletionSink*> fileSink_{nullptr};
  std::vector<FileCompletion> fileDone_;  // the polling thread's
  bool ownFlush_ = false;
  bool skipCancelSuccess_ = false;
  std::atomic<long> inFlight_{0};  // operations submitted, completion not reaped

  std::mutex sqMutex_;  // the SQ's user-space side and the flags below
  unsigned queued_ = 0;          // SQEs filled, not yet handed to the kernel
  bool waiting_ = false;         // the poller is (about to be) asleep in io_uring_enter
  bool wakeRequested_ = false;   // wakeup() while not waiting: the next wait does not sleep
  bool wakeQueued_ = false;      // a wake-up NOP is in the ring
};

}  // namespace

bool ioUringCompiled() noexcept { return true; }

std::unique_ptr<Poller> createIoUringPoller(std::error_code& ec) {
  auto poller = std::make_unique<UringPoller>();
  if ((ec = poller->open())) return nullptr;
  return poller;
}

}  // namespace evchan::detail
