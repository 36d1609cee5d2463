// Internal: the small interface every EventChannel backend implements.
#ifndef EVCHAN_SRC_CHANNEL_POLLER_H
#define EVCHAN_SRC_CHANNEL_POLLER_H

#include <memory>
#include <system_error>
#include <vector>

#include <evchan/event_channel.h>

#include "channel/watch.h"
#include "deadline.h"

namespace evchan::detail {

enum ReadyFlags : unsigned { kReadable = 1, kWritable = 2, kHungUp = 4 };

struct Readiness {
  Watch* watch;
  /// kReadable | kWritable; errors and hang-ups set both, and edge-triggered
  /// pollers add kHungUp for a peer that closed or reset.
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
  virtual std::error_code wait(std::vector<Readiness>& ready, Deadline deadline) noexcept = 0;
  /// Makes the current (or next) wait() return promptly.
  virtual void wakeup() noexcept = 0;

  /// Backends that perform FileReadEvent and FileWriteEvent themselves
  /// (aio); the channel runs the others' file IO on a worker it counts as
  /// blocked.
  virtual bool completesFileOperations() const noexcept { return false; }
  /// Starts a file event (the IO byte counts already zeroed); it comes back
  /// through `sink`, from any thread.  Only when completesFileOperations().
  virtual std::error_code submitFile(Event& /*event*/, CompletionSink& /*sink*/) noexcept {
    return std::make_error_code(std::errc::function_not_supported);
  }
  /// At shutdown: cancels what submitFile() started and returns once every
  /// one has come back through its sink.
  virtual void drainFileOperations() noexcept {}
};

/// Creates the poller for `backend`, resolving Backend::Default (and the
/// EVCHAN_BACKEND variable) to the best available one, falling back when
/// the kernel refuses one.  An explicit backend is strict.
std::unique_ptr<Poller> createPoller(Backend backend, std::error_code& ec);

/// The backends this build compiled, best first, and their constructor.
/// Defined once per platform (src/linux/, src/posix/, src/apr/
/// compiled_backends.cpp).
const std::vector<Backend>& compiledBackends() noexcept;
std::unique_ptr<Poller> createCompiledPoller(Backend backend, std::error_code& ec);

/// The individual pollers, each in its own file.
std::unique_ptr<Poller> createEpollPoller(std::error_code& ec);
std::unique_ptr<Poller> createPollPoller(std::error_code& ec);
std::unique_ptr<Poller> createSelectPoller(std::error_code& ec);
std::unique_ptr<Poller> createAprPollsetPoller(std::error_code& ec);
std::unique_ptr<Poller> createAioPoller(std::error_code& ec);

/// Reads EVCHAN_BACKEND: Backend::Default when unset; an unknown name is
/// std::errc::invalid_argument.
Backend backendFromEnvironment(std::error_code& ec);

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_POLLER_H
