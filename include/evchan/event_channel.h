// SPDX-License-Identifier: Apache-2.0
// EventChannel: the central IO abstraction.
#ifndef EVCHAN_EVENT_CHANNEL_H
#define EVCHAN_EVENT_CHANNEL_H

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include <evchan/duration.h>
#include <evchan/event.h>
#include <evchan/export.h>
#include <evchan/task.h>

namespace evchan {

namespace detail {
class ChannelCore;
struct ChannelFront;
}

/// How the channel drives its sockets.  Readiness backends (epoll, poll,
/// select, apr_pollset, aio) learn that a socket is ready and the channel
/// does the IO; the completion backends (io_uring, Linux with liburing;
/// iocp, Windows I/O completion ports) have the kernel do the IO and
/// report it done.  Default picks the best one compiled in and supported
/// by the running kernel (or the one named by the EVCHAN_BACKEND
/// environment variable: epoll, io_uring, poll, select, apr_pollset, aio,
/// iocp); on Windows that is Iocp.  Any other value is strict: create() fails with
/// std::errc::function_not_supported when it is not compiled in, and with
/// the kernel's refusal (std::errc::function_not_supported,
/// operation_not_permitted, ...) when the kernel has no usable io_uring.
/// Aio performs file events with POSIX aio and watches sockets with
/// poll(2) (POSIX aio serves sockets badly: see src/posix/aio_poller.cpp);
/// it is never the default, and a process forked from one that has had an
/// aio channel is refused one (function_not_supported: the C library's
/// aio state comes without its helper threads).  Iocp exists on Windows only (overlapped
/// WSARecv/WSASend/AcceptEx/ConnectEx on a completion port; file events
/// still run on a worker).
enum class Backend { Default, Epoll, Poll, Select, AprPollset, IoUring, Aio, Iocp };

/// The name backendName() reports for `backend` ("epoll", "io_uring", "apr_pollset", ...).
EVCHAN_API const char* backendName(Backend backend) noexcept;
/// The backend backendName() calls `name` ("default" included), e.g. for a
/// command-line option; false, leaving `backend` alone, for another name.
EVCHAN_API bool backendFromName(const std::string& name, Backend& backend) noexcept;

/// The most worker threads a channel may have (initialThreads and
/// maxThreads above it are refused with std::errc::invalid_argument).
constexpr int kMaxWorkerThreads = 16384;

/// Called with the id of a task and the exception that ended it when
/// nobody can see that exception any more (see
/// EventChannelOptions::onUnhandledException).
using UnhandledExceptionHandler = std::function<void(TaskId, std::exception_ptr)>;

/// The default report of an unhandled task exception: one line on stderr,
/// "evchan: task <id> ended with an unhandled exception: <what()>".  A
/// handler may call it too.  Thread-safe.
EVCHAN_API void printUnhandledTaskException(TaskId id, const std::exception_ptr& exception) noexcept;

/// Settings for EventChannel::create().  Values out of range are refused,
/// never clamped: create() fails with std::errc::invalid_argument (the
/// throwing form names the option and its limit).
struct EVCHAN_API EventChannelOptions {
  /// The backend to drive sockets with (see Backend); Default picks one.
  Backend backend = Backend::Default;
  /// Worker threads to start with and to keep, 0 to kMaxWorkerThreads;
  /// 0 = the CPU parallelism available to the process (see
  /// ThreadPoolStats::cpuParallelism).  All of them start in create(): if
  /// the OS refuses one, create() stops and joins those that started and
  /// fails with std::errc::resource_unavailable_try_again (the throwing
  /// form says how many started).
  int initialThreads = 0;
  /// Hard cap on worker threads, 0 to kMaxWorkerThreads, not below
  /// initialThreads; 0 = max(64, 16 x initialThreads), at most
  /// kMaxWorkerThreads.
  int maxThreads = 0;
  /// Threads above initialThreads exit after idling this long.
  Duration idleTimeout = std::chrono::seconds(10);
  /// Stack size of tasks spawned without their own; mapped lazily, so
  /// untouched pages cost address space, not memory.  Rounded up to whole
  /// pages, at least 16 KiB; above kMaxTaskStackSize (1 GiB) create()
  /// fails with std::errc::invalid_argument.
  std::size_t taskStackSize = 64 * 1024;
  /// A worker that runs one item (a callback, or a task between two
  /// suspensions) for longer than this while work is queued, or while
  /// nobody is left to poll, and that is asleep in the kernel (a blocking
  /// call not wrapped in evchan::blocking()) is presumed blocked: it
  /// counts in ThreadPoolStats::blocked until the item ends, and the pool
  /// starts a spare thread for the waiting work, within maxThreads.  A
  /// worker that is runnable instead (computing, or preempted) is not:
  /// another thread would compete for the same CPUs; it is counted in
  /// ThreadPoolStats::runnablePastGrace.  On Linux the monitor reads the
  /// worker's state from /proc (asleep: seen "S" or "D" at two checks in a
  /// row within the item); where no such probe exists every worker past
  /// the grace period is presumed blocked.  A monitor thread checks every
  /// grace period while some worker is busy and sleeps while the channel
  /// is idle; while work waits it also wakes an idle worker for it (a
  /// worker that polled runs its completions itself while they look short,
  /// and one long item would hold the rest, and what the item woke, such
  /// as a task it notified).  Zero turns the monitor off;
  /// a poll's completions are then shared with an idle worker whenever
  /// there are two or more, short or not, since nothing would catch one
  /// that runs long.  A single completion is not shared: while it runs
  /// long, timers and sockets wait for it to end unless another worker
  /// comes for other work.
  Duration stuckWorkerGrace = std::chrono::milliseconds(5);
  /// Where an exception goes that escaped a task's function and that no
  /// join() rethrew: called once, when the task has ended with it and no
  /// TaskHandle to it is left, whichever comes last: at the task's end
  /// (on the worker that ran it, the task already off its stack) when
  /// every handle was dropped before, or in the destructor of the last
  /// TaskHandle (on that thread, or task) when it is dropped after the end
  /// without any join() having rethrown it.  Once any join() has rethrown
  /// it, it is the caller's and is never reported.  The exceptions that
  /// end a cancelled task (std::system_error with
  /// std::errc::operation_canceled: shutdown(), TaskHandle::cancel(),
  /// TaskGroup::cancel(), a cancelled socket) are its expected end and are
  /// not reported.  Empty (the default): printUnhandledTaskException(), one
  /// line on stderr.  The handler runs with no lock of the library held,
  /// may be called from several threads at once, may outlive the channel
  /// (a handle dropped after it), and should not throw: an exception from
  /// it is caught, and the default line printed too.  Nothing here
  /// terminates the process.
  UnhandledExceptionHandler onUnhandledException = nullptr;
};

/// A snapshot of the channel's thread pool.
struct EVCHAN_API ThreadPoolStats {
  int current = 0;         ///< live worker threads
  int peak = 0;            ///< most live at once
  int idle = 0;            ///< waiting for work (the poller included)
  int blocked = 0;         ///< in a blocking call the pool compensates for, or presumed stuck
  int initial = 0;         ///< the size the pool keeps (initialThreads)
  int maxThreads = 0;      ///< the cap
  /// CPUs detected: on Linux the affinity mask capped by a cgroup v2
  /// quota; elsewhere (and in --disable-posix builds) the machine's count,
  /// std::thread::hardware_concurrency().
  int cpuParallelism = 0;
  std::uint64_t started = 0;  ///< threads started over the channel's life
  std::uint64_t exited = 0;   ///< threads that exited (idle timeout or shutdown)
  int inGetEvent = 0;         ///< threads (of the pool or not) inside getEvent()
  /// Of `started`: the initialThreads started by create().
  std::uint64_t startedInitial = 0;
  /// Of `started`: spares started when a worker entered a blocking call the
  /// pool is told about (evchan::blocking(), a BlockingScope, or the
  /// channel's own waits: getEvent() or NotifyEvent::wait() on a worker, a
  /// file operation, TaskHandle::join() from a worker thread).
  std::uint64_t startedForBlockingCalls = 0;
  /// Of `started`: spares started by the stuck-worker monitor for a worker
  /// it presumed blocked (see EventChannelOptions::stuckWorkerGrace).
  std::uint64_t startedForPresumedStuck = 0;
  /// Of `started`: the rest, started when work was queued or nobody polled
  /// while blocked workers left fewer than initialThreads free (a spare
  /// started later than the blocking that made room for it).
  std::uint64_t startedForGrowth = 0;
  /// Items (a callback, a task slice) the stuck-worker monitor found past
  /// stuckWorkerGrace while work waited, with their worker runnable
  /// (computing, or preempted), each counted once: no thread was started
  /// for them; the waiting work went to an idle worker, or waited when
  /// none was idle.  A count that grows says that
  /// items compute too long between suspensions, or that the process gets
  /// less CPU than it has workers.
  std::uint64_t runnablePastGrace = 0;
};

/// The event channel: post() takes asynchronous requests (Events); each
/// comes back once complete, to its callback on a worker thread or from
/// getEvent().  Owns a thread pool that polls the backend and runs
/// callbacks; it grows when every worker is blocked and work is waiting,
/// never beyond maxThreads, and shrinks back after idleTimeout.
/// All members are thread-safe.
class EVCHAN_API EventChannel {
 public:
  /// The settings create() takes.
  using Options = EventChannelOptions;

  ///@{
  /// Creates a channel and starts its pool.  Errors: the requested backend
  /// is unavailable (function_not_supported); bad options
  /// (invalid_argument: thread counts negative or above kMaxWorkerThreads,
  /// initial above max, negative idle timeout or stuckWorkerGrace,
  /// taskStackSize above kMaxTaskStackSize); the OS refusing one of the
  /// initialThreads (resource_unavailable_try_again, once the threads that
  /// did start are joined: no channel runs with a partial pool); the OS
  /// refusing another resource.
  /// The error form returns nullptr on error.
  static std::unique_ptr<EventChannel> create(const Options& options = Options());
  static std::unique_ptr<EventChannel> create(const Options& options, std::error_code& ec) noexcept;
  ///@}

  /// Shuts down (see shutdown()) and joins the pool.  Completed events
  /// without a callback that nobody took from getEvent() are handed back
  /// (no longer in flight; each keeps its result: operation_canceled for
  /// those the shutdown cancelled), and so is any that completes after
  /// the destructor (one started from a worker, below): their owners may
  /// destroy them.  Threads blocked in
  /// getEvent() meanwhile wake up with nullptr; they keep alive what they
  /// touch, so the destructor does not wait for them to leave.  A call
  /// that starts once the destructor has begun is a use of a destroyed
  /// object, as for any class: destroy the channel only while its
  /// consumers are inside getEvent() (poolStats().inGetEvent counts them)
  /// or gone; the simple order is shutdown(), join the consumer threads
  /// (their getEvent() returns nullptr), destroy.
  ///
  /// A channel may be a global or function-static object, its tasks still
  /// parked when the process exits: static destruction unwinds them like
  /// any shutdown, in whatever order it destroys the channel and evchan's
  /// own process-wide state (which is never destroyed).
  ///
  /// Destroyed from one of its own tasks or callbacks (on one of its
  /// workers), it cannot join the pool that runs its caller: it starts the
  /// shutdown and returns at once.  The calling task goes on (it must not
  /// touch the destroyed EventChannel; its next suspension throws
  /// operation_canceled), and the workers end, and free the channel's
  /// resources, once its tasks have unwound as shutdown() describes.
  /// Nothing waits for them: a process that exits meanwhile stops them
  /// where they are, as it stops any thread.  To be sure the tasks'
  /// destructors ran, destroy the channel from outside its workers.
  ~EventChannel();
  EventChannel(const EventChannel&) = delete;
  EventChannel& operator=(const EventChannel&) = delete;

  ///@{
  /// Starts the request `event` describes.  Errors (the event is then not in
  /// flight): Errc::already_in_flight, Errc::channel_shut_down,
  /// Errc::not_open (closed socket), Errc::null_buffer,
  /// Errc::negative_timeout (timer), Errc::socket_busy (a read or write is
  /// already pending on that socket), std::errc::invalid_argument (a file
  /// event's offset of 2^63 or more, on every backend).  already_in_flight
  /// comes before the others (the event stays in flight from its earlier
  /// post): an event whose socket was closed, or whose channel was shut
  /// down, while it was in flight is reported as in flight.
  ///
  /// A socket is not tied to a channel: events on it may be posted to one
  /// channel and later to another (tasks of several channels may take
  /// turns with a connection).  Each channel it was used on keeps watching
  /// it until it is closed, and close() cancels what is pending in each;
  /// the rule of one pending read (or accept) and one pending write (or
  /// connect) at a time holds across channels, but is only checked within
  /// one.
  void post(Event& event);
  void post(Event& event, std::error_code& ec) noexcept;
  ///@}

  /// Cancels `event`, posted to this channel and still waiting: a read,
  /// write, accept or connect parked on its socket, a timer not yet
  /// expired, or a ResolveEvent whose lookup has not finished (the lookup
  /// itself runs on, its answer dropped).  True then: the event completes exactly once, like any
  /// completion (its callback, or getEvent()), with
  /// std::errc::operation_canceled and nothing transferred; on io_uring,
  /// where the kernel may finish the operation before the cancellation
  /// reaches it, it may instead complete with the result it got (a read's
  /// data is never lost).  Its socket stays open and usable, and the event
  /// may be posted again once it is back (a cancelled TimerEvent too).
  ///
  /// False, doing nothing, when the event is not waiting here: never
  /// posted, already completed or completing (cancel() from its own
  /// callback), posted to another channel, or of a kind that does not wait
  /// (NotifyEvent, DispatchEvent, file events, which complete without
  /// waiting for a peer).  Thread-safe, and safe to race with the event's
  /// completion; the event must stay alive until it is back, as for any
  /// posted event.
  bool cancel(Event& event) noexcept;

  /// Waits up to `timeout` for a completed event that has no callback and
  /// returns it, or nullptr on timeout or once the channel is shut down and
  /// drained.  After shutdown() it still returns the events completed (or
  /// cancelled) until none is left, then nullptr at once; events it has
  /// not returned yet may be destroyed instead (see Event).  Many threads
  /// may wait at once; each event goes to one.  The channel may be shut
  /// down or destroyed while they wait (see ~EventChannel).
  Event* getEvent(Duration timeout = kInfiniteTimeout);

  /// Completes every pending event with std::errc::operation_canceled, runs
  /// the callbacks still queued, wakes every thread in getEvent(), lets the
  /// tasks unwind (their waits, join() included, end in operation_canceled;
  /// see task.h) and
  /// joins the pool (unless called from one of its own workers, which only starts
  /// the shutdown; the destructor joins).  Idempotent.
  void shutdown() noexcept;
  /// True once shutdown() has begun (on any thread); it never becomes
  /// false again.
  bool isShutDown() const noexcept;

  ///@{
  /// Starts `function` as a task on this channel's workers, never on the
  /// calling thread.  Errors: Errc::channel_shut_down once shutdown() has
  /// begun (a spawn racing it either starts its task on a worker or fails
  /// so, the task never run); std::errc::invalid_argument for a stack size
  /// above kMaxTaskStackSize; std::errc::function_not_supported in an
  /// APR-only POSIX build (--disable-posix), which has no tasks; the OS
  /// refusing a stack (on Windows, where tasks run on Win32 fibers,
  /// CreateFiberEx failing: std::errc::not_enough_memory).
  TaskHandle spawn(std::function<void()> function, const TaskOptions& options = TaskOptions());
  TaskHandle spawn(std::function<void()> function, const TaskOptions& options, std::error_code& ec) noexcept;
  ///@}

  /// Starts `function(arguments...)` as a task, like the std::function
  /// form (same errors, thrown as SystemError), for any callable, copyable
  /// or move-only, and arguments of any movable type: each is moved (or
  /// copied, from an lvalue) into the task, as std::thread does, and the
  /// function is invoked with them as rvalues; they are destroyed in the
  /// task when the function returns or throws (or with the task, should
  /// it never start).  A null function pointer or empty std::function is
  /// std::errc::invalid_argument.  Its result, if any, is discarded.
  /// @par Example
  /// @code
  ///   channel.spawn([](TcpSocket socket) { echo(socket); }, listener.accept());
  /// @endcode
  template <typename F, typename... Arguments,
            typename = std::enable_if_t<detail::isTaskFunction<F, Arguments...>>>
  TaskHandle spawn(F&& function, Arguments&&... arguments) {
    return spawnBound(detail::bindTaskFunction(std::forward<F>(function), std::forward<Arguments>(arguments)...),
                      TaskOptions());
  }
  /// The same, with the task's options first.
  template <typename F, typename... Arguments,
            typename = std::enable_if_t<detail::isTaskFunction<F, Arguments...>>>
  TaskHandle spawn(const TaskOptions& options, F&& function, Arguments&&... arguments) {
    return spawnBound(detail::bindTaskFunction(std::forward<F>(function), std::forward<Arguments>(arguments)...),
                      options);
  }

  /// The backend in use: "epoll", "io_uring", "poll", "select", "apr_pollset",
  /// "aio" or "iocp".
  const char* backendName() const noexcept;
  /// A snapshot of the thread pool's counters; they may change as soon
  /// as it returns.
  ThreadPoolStats poolStats() const;

 private:
  friend class TaskGroup;
  EventChannel(std::shared_ptr<detail::ChannelCore> core, const Options& options);
  static std::unique_ptr<EventChannel> wrap(const std::shared_ptr<detail::ChannelCore>& core, const Options& options);
  TaskHandle spawnBound(std::unique_ptr<detail::TaskFunction> function, const TaskOptions& options);
  TaskHandle spawnBound(std::unique_ptr<detail::TaskFunction> function, const TaskOptions& options,
                        std::error_code& ec) noexcept;

  std::shared_ptr<detail::ChannelCore> core_;
  /// What its tasks know of the channel (this object, while it lives, and
  /// the options that concern them); they share it.
  std::shared_ptr<detail::ChannelFront> front_;
};

}  // namespace evchan

#endif  // EVCHAN_EVENT_CHANNEL_H
