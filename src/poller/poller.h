// SPDX-License-Identifier: Apache-2.0
// Internal: the small interface every EventChannel backend implements.
#ifndef EVCHAN_SRC_POLLER_POLLER_H
#define EVCHAN_SRC_POLLER_POLLER_H

#include <cstddef>
#include <memory>
#include <system_error>
#include <vector>

#include <evchan/buffer.h>
#include <evchan/event_channel.h>

#include "poller/watch.h"
#include "poller/deadline.h"

namespace evchan::detail {

enum ReadyFlags : unsigned { kReadable = 1, kWritable = 2, kHungUp = 4, kUrgent = 8 };

struct Readiness {
  Watch* watch;
  /// kReadable | kWritable; errors and hang-ups set both, and edge-triggered
  /// pollers add kHungUp for a peer that closed or reset, and kUrgent (with
  /// kReadable) for urgent data (TCP's MSG_OOB): a read stops at its mark.
  unsigned flags;
};

/// Where a backend that completes operations itself (aio) hands them back,
/// from any thread.
class CompletionSink {
 public:
  virtual void operationCompleted(Event& event, std::error_code result) noexcept = 0;

 protected:
  ~CompletionSink() = default;
};

class CompletionPoller;
struct MessageScratch;

/// Tells the channel which sockets are ready.  The channel calls wait()
/// from one thread at a time; every other member may be called from any
/// thread, concurrently with wait().
class Poller {
 public:
  virtual ~Poller() = default;

  virtual Backend kind() const noexcept = 0;

  /// Edge-triggered pollers watch both directions from add() to remove()
  /// and report each change once; the channel then keeps readiness hints.
  /// Level-triggered ones watch only what setInterest() asks for.
  virtual bool edgeTriggered() const noexcept = 0;

  virtual std::error_code add(Watch& watch) noexcept = 0;
  /// Level-triggered pollers: the directions (kReadable | kWritable) to
  /// watch from now on; 0 for none.  Called with watch.mutex held.
  virtual std::error_code setInterest(Watch& watch, unsigned interest) noexcept = 0;
  /// Stops watching; called before the descriptor is closed.
  virtual void remove(Watch& watch) noexcept = 0;

  /// Waits until a watched socket is ready, wakeup() is called or the
  /// deadline passes; appends what is ready to `ready` (which it clears first).
  /// With nothing to report it returns before the deadline only when woken,
  /// when the system call is interrupted (EINTR) or, on apr_pollset, once
  /// after a move to a larger set and at its sleep bound under Wine; the
  /// channel then polls again.
  virtual std::error_code wait(std::vector<Readiness>& ready, Deadline deadline) noexcept = 0;
  /// Makes the current (or next) wait() return promptly.
  virtual void wakeup() noexcept = 0;

  /// Backends that perform FileReadEvent and FileWriteEvent themselves
  /// (aio); the channel runs the others' file IO on a worker it counts as
  /// blocked.
  virtual bool completesFileOperations() const noexcept { return false; }
  /// Starts a file event (the IO byte counts already zeroed); it comes back
  /// through `sink`, from any thread.  Only when completesFileOperations().
  /// std::errc::function_not_supported for a file this backend cannot
  /// take (IOCP: one it cannot reopen for overlapped IO): the channel then
  /// runs that event on a worker.
  virtual std::error_code submitFile(Event& /*event*/, CompletionSink& /*sink*/) noexcept {
    return std::make_error_code(std::errc::function_not_supported);
  }
  /// At shutdown: cancels what submitFile() started and returns once every
  /// one has come back through its sink; a CompletionPoller may return
  /// sooner if its file operations count in busy() (the workers poll on
  /// until they are back).
  virtual void drainFileOperations() noexcept {}

  /// A backend whose kernel performs the operations itself (io_uring)
  /// returns its completion interface; the channel then submits socket
  /// operations instead of trying them on readiness, and waits with
  /// CompletionPoller::waitCompletions() instead of wait().  Null for a
  /// readiness backend.
  virtual CompletionPoller* completions() noexcept { return nullptr; }
};

/// One socket operation for a completion backend to perform.  Everything
/// it points to stays valid until the operation's completion is reported
/// (the buffer and the pieces are the event's, the address lives in the
/// socket's pool).
struct SocketOperation {
  enum class Kind { Receive, Send, SendPieces, Accept, Connect, ReceiveMessage, SendMessage };
  Kind kind;
  int fd;
  void* buffer;              ///< Receive, Send
  std::size_t size;          ///< Receive, Send
  const void* address;       ///< Connect: a struct sockaddr
  unsigned addressLength;    ///< Connect
  /// SendPieces: a gather send, the first piece not empty.  The backend
  /// caps the count at what one call takes (IOV_MAX) and keeps its message
  /// header in the watch's sendHeader until the completion.
  const ConstBuffer* pieces;
  std::size_t pieceCount;
  /// ReceiveMessage, SendMessage: one message of `size` bytes at `buffer`
  /// (recvmsg/sendmsg), the header built in the event's scratch; a
  /// datagram send's destination, if any, is in scratch->address
  /// (addressLength bytes); descriptors passed go in scratch->control (a
  /// receive's then close-on-exec).
  MessageScratch* scratch;
};

/// The operation of a watch's reader or writer slot has finished.
struct Completion {
  Watch* watch;
  unsigned slot;  ///< kReadable: watch->reader; kWritable: watch->writer
  /// The kernel's: bytes, a descriptor, 0, or -errno (on Windows, minus
  /// the APR status of a Winsock error, which kernelError() reads alike;
  /// -ECANCELED and -ECONNABORTED as everywhere).
  int result;
};

/// The completion side of a backend.  One operation at a time per watch
/// slot.  Every member may be called from any thread, except
/// waitCompletions(), which the channel calls from one thread at a time.
class CompletionPoller {
 public:
  virtual ~CompletionPoller() = default;

  /// Queues `operation` for the watch's `slot` (kReadable or kWritable),
  /// called with watch.mutex held.  The kernel may see it only at the next
  /// waitCompletions() or flush(); its completion comes from
  /// waitCompletions() exactly once, cancelled or not.
  virtual std::error_code submit(const SocketOperation& operation, Watch& watch, unsigned slot) noexcept = 0;
  /// Asks the kernel to cancel the operation in the watch's `slot`; it then
  /// completes with -ECANCELED (or with its result, if it finished first).
  /// Harmless when the operation has completed already.
  virtual void cancel(Watch& watch, unsigned slot) noexcept = 0;
  /// Hands every queued operation to the kernel now.  After it returns the
  /// kernel holds its own reference to each file those operations use, so
  /// their descriptors may be closed.
  virtual void flush() noexcept = 0;
  /// Waits until an operation completes, wakeup() is called or the deadline
  /// passes; appends the completions to `done` (which it clears first).
  virtual std::error_code waitCompletions(std::vector<Completion>& done, Deadline deadline) noexcept = 0;
  /// Operations submitted whose completion has not been reported yet.
  virtual bool busy() const noexcept = 0;
  /// Closes a descriptor an accept produced that nobody will own.
  virtual void closeDescriptor(int fd) noexcept = 0;
  /// After a ReceiveMessage completed: sets the scratch's addressLength,
  /// truncated, controlLength and controlTruncated from the header the
  /// kernel filled.
  virtual void finishMessage(MessageScratch& /*scratch*/) noexcept {}
};

/// Creates the poller for `backend`, resolving Backend::Default (and the
/// EVCHAN_BACKEND variable) to the best available one, falling back when
/// the kernel refuses one.  An explicit backend is strict.
std::unique_ptr<Poller> createPoller(Backend backend, std::error_code& ec);

/// The backends this build compiled, best first, and their constructor.
/// Defined once per platform (src/linux/, src/posix/, src/win32/,
/// src/apr/ compiled_backends.cpp).
const std::vector<Backend>& compiledBackends() noexcept;
std::unique_ptr<Poller> createCompiledPoller(Backend backend, std::error_code& ec);

/// The individual pollers, each in its own file.
std::unique_ptr<Poller> createEpollPoller(std::error_code& ec);
std::unique_ptr<Poller> createPollPoller(std::error_code& ec);
std::unique_ptr<Poller> createSelectPoller(std::error_code& ec);
std::unique_ptr<Poller> createAprPollsetPoller(std::error_code& ec);
std::unique_ptr<Poller> createAioPoller(std::error_code& ec);
/// Windows: I/O completion ports (src/win32/iocp_poller.cpp).
std::unique_ptr<Poller> createIocpPoller(std::error_code& ec);
/// io_uring: function_not_supported in a build without liburing; otherwise
/// the kernel's refusal when it has no ring or lacks an operation we need.
std::unique_ptr<Poller> createIoUringPoller(std::error_code& ec);
/// Whether this build has the io_uring backend (configure --with-io-uring).
bool ioUringCompiled() noexcept;

/// Reads EVCHAN_BACKEND: Backend::Default when unset; an unknown name is
/// std::errc::invalid_argument.
Backend backendFromEnvironment(std::error_code& ec);

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_POLLER_H
