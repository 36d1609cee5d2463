// SPDX-License-Identifier: Apache-2.0
// Tasks: user-level contexts scheduled M:N onto an EventChannel's workers.
// Built on POSIX with the native layer (Boost.Context or ucontext) and on
// Windows (Win32 fibers); an APR-only POSIX build (--disable-posix) has
// none, and EventChannel::spawn() fails there with function_not_supported.
#ifndef EVCHAN_TASK_H
#define EVCHAN_TASK_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include <evchan/duration.h>
#include <evchan/export.h>

namespace evchan {

class EventChannel;

namespace detail {
class TaskState;

/// A task's function bound to its arguments, run once (internal to spawn()).
class TaskFunction {
 public:
  virtual ~TaskFunction() = default;
  virtual void run() = 0;
};

/// Holds decayed copies (or moves) of the function and its arguments, as
/// std::thread does, and invokes them as rvalues: move-only types work.
template <typename Function, typename... Arguments>
class BoundTaskFunction final : public TaskFunction {
 public:
  template <typename F, typename... A>
  explicit BoundTaskFunction(F&& function, A&&... arguments)
      : function_(std::forward<F>(function)), arguments_(std::forward<A>(arguments)...) {}
  void run() override { std::apply(std::move(function_), std::move(arguments_)); }

 private:
  Function function_;
  std::tuple<Arguments...> arguments_;
};

template <typename T>
struct IsStdFunction : std::false_type {};
template <typename Signature>
struct IsStdFunction<std::function<Signature>> : std::true_type {};

/// True for a null function pointer or an empty std::function, which
/// spawn() refuses (std::errc::invalid_argument) rather than run.
template <typename F>
bool isNullFunction(const F& function) noexcept {
  if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F> || IsStdFunction<F>::value) {
    return function == nullptr;
  } else {
    return false;
  }
}

/// The bound function spawn() hands to the task, or null for a null function.
template <typename F, typename... Arguments>
std::unique_ptr<TaskFunction> bindTaskFunction(F&& function, Arguments&&... arguments) {
  if (isNullFunction(function)) return nullptr;
  return std::make_unique<BoundTaskFunction<std::decay_t<F>, std::decay_t<Arguments>...>>(
      std::forward<F>(function), std::forward<Arguments>(arguments)...);
}

/// Whether spawn(function, arguments...) can run the function with them.
template <typename F, typename... Arguments>
constexpr bool isTaskFunction = std::is_invocable_v<std::decay_t<F>, std::decay_t<Arguments>...>;

}  // namespace detail

/// A task's number, unique within the process, never 0.
using TaskId = std::uint64_t;

/// The largest task stack size accepted (1 GiB): EventChannel::create()
/// and spawn() refuse a larger one with std::errc::invalid_argument.
constexpr std::size_t kMaxTaskStackSize = std::size_t(1) << 30;

/// Settings for one spawn.
struct EVCHAN_API TaskOptions {
  /// Stack size in bytes; 0 = the channel's (EventChannelOptions::taskStackSize).
  /// Rounded up to whole pages, at least 16 KiB, at most kMaxTaskStackSize
  /// (spawn() fails with std::errc::invalid_argument above it).
  std::size_t stackSize = 0;
};

/// A handle to a spawned task.  Copies refer to the same task; the task
/// runs to its end whether or not a handle is kept.
class EVCHAN_API TaskHandle {
 public:
  TaskHandle() noexcept = default;

  /// Waits for the task to end: inside a task it suspends the caller, on a
  /// plain thread it blocks.  Rethrows an exception that escaped the task's
  /// function (every join does).  Joining one's own task is
  /// std::errc::resource_deadlock_would_occur; an empty handle is
  /// std::errc::invalid_argument (both thrown as SystemError).
  ///
  /// Inside a task, join() is a cancellation point like every other wait
  /// (see this_task below): once the caller's channel is shut down, joining
  /// a task that has not ended throws SystemError(operation_canceled) and
  /// the joined task goes on undisturbed (tasks that join each other, a
  /// deadlock, are unwound this way).  A task may join a task of another
  /// channel: it waits suspended and resumes on a worker of its own
  /// channel, never on the other channel's; the shutdown of either channel
  /// does not affect the other's tasks, except that a joined task unwound
  /// by its own channel's shutdown ends the join with its exception.
  void join();
  /// Cancels the task: its wait in progress, or the next one it starts
  /// (the suspension points listed under this_task below: yield(),
  /// sleepFor(), join(), the waits of ConditionVariable and Notification,
  /// socket and file calls that would wait, and the yield of a socket call
  /// every 64 that did not wait; not Mutex::lock(), see Mutex), ends with
  /// std::errc::operation_canceled, as shutdown() ends them: the calls
  /// that throw throw SystemError(operation_canceled), the
  /// std::error_code forms return it.  The request stays: every later
  /// wait fails the same way, so a task that catches the exception and
  /// waits again is cancelled again; work that never waits (computation,
  /// an uncontended lock) is not interrupted, and a socket call whose data
  /// or room is already there completes, up to that yield.  A
  /// this_task::CancellationShield defers it.  A task that
  /// ends with the exception is not reported as unhandled (see
  /// EventChannelOptions::onUnhandledException).
  ///
  /// Returns true when the request was recorded for a task that had not
  /// ended; false, doing nothing, for a task that has ended (a cancel
  /// racing the task's end may return true for a task that then ends
  /// without noticing) and for an empty handle.  Cancelling twice, or from
  /// inside the task itself (its next wait throws), is harmless.
  /// Thread-safe, from any thread or task, never blocks on the task.
  bool cancel() noexcept;
  /// True once the task's function has returned or thrown.
  bool done() const noexcept;
  /// The task's id; 0 for an empty handle.
  TaskId id() const noexcept;
  /// False for an empty handle (default-constructed, or from a failed spawn).
  bool valid() const noexcept { return state_ != nullptr; }

 private:
  friend class detail::TaskState;
  explicit TaskHandle(std::shared_ptr<detail::TaskState> state) noexcept : state_(std::move(state)) {}
  std::shared_ptr<detail::TaskState> state_;
};

/// True when the calling code runs inside a task.
EVCHAN_API bool inTask() noexcept;

/// Calls for the task that is running.  Outside a task they act on the
/// calling thread (yield() yields it, sleepFor() sleeps it, id() is 0).
///
/// Cancellation: once a task's channel is shut down, every call that would
/// suspend the task fails at once (and one it is suspended in ends early):
/// yield(), sleepFor(), TaskHandle::join() of a task not yet ended, a
/// contended Mutex::lock(), the waits of ConditionVariable and Notification
/// throw
/// SystemError(std::errc::operation_canceled); socket calls fail with
/// operation_canceled (or Errc::channel_shut_down when called after it).
/// The exception unwinds the task, and join() rethrows it.  shutdown()
/// waits for the tasks to end, so a task that catches the exception and
/// keeps waiting keeps the shutdown waiting.  TaskHandle::cancel() and
/// TaskGroup::cancel() end the same waits of one task the same way, but
/// for Mutex::lock().
///
/// Fairness: a socket call (TCP, Unix, UDP, ShmStream reads and writes)
/// whose data or room is already there completes without suspending.
/// After 64 such calls in a row the next one yields first, as yield()
/// does, so that a peer that always has more to send cannot keep the
/// other tasks of the worker, or the channel's polling, waiting.  That
/// yield is a suspension point: after a shutdown or a cancel() the call
/// fails with operation_canceled, and past a DeadlineScope's deadline with
/// timed_out.  Computation between the calls is not counted: a task that
/// computes long yields itself.
namespace this_task {
/// Lets other ready tasks run; this one continues later, on any worker.
EVCHAN_API void yield();
/// Suspends the task (not the thread) for at least `duration`.
EVCHAN_API void sleepFor(Duration duration);
/// The running task's id (unique in the process, never 0); 0 outside a task.
EVCHAN_API TaskId id() noexcept;
/// The EventChannel the running task was spawned on, so that a task can
/// spawn more tasks (or post events) without capturing a pointer to it.
/// Outside a task it throws SystemError(std::errc::operation_not_permitted).
/// The reference is valid while that EventChannel lives: destroyed from
/// outside its workers, it outlives all its tasks (the destructor waits
/// for them); destroyed from one of its own tasks, the tasks still
/// unwinding afterwards get SystemError(Errc::channel_shut_down) from
/// channel() and must not use a reference taken before.  Thread-safe.
EVCHAN_API EventChannel& channel();

/// True once TaskHandle::cancel() (or a TaskGroup's cancel) was called
/// for the running task, shielded or not; false outside a task.
EVCHAN_API bool cancellationRequested() noexcept;

/// While one lives, TaskHandle::cancel() of the running task is deferred:
/// the task's waits run to their end as if it had not been called, so
/// that a clean-up section can finish a write or say goodbye.  When the
/// last shield of the task goes, the next wait throws operation_canceled.
/// Shields nest.  Shutdown of the channel is not deferred (the channel is
/// going away: its waits fail regardless).  A DeadlineScope does not bound
/// the waits under a shield either: bound a goodbye with the socket's own
/// timeout, or a peer that never reads holds it for ever.  Outside a task it does
/// nothing.  Create and destroy it in the same task (a local variable).
/// @par Example
/// @code
///   } catch (const SystemError&) {
///     this_task::CancellationShield shield;
///     socket.writeAll("bye\n", 4);
///     throw;
///   }
/// @endcode
class EVCHAN_API CancellationShield {
 public:
  CancellationShield() noexcept;
  ~CancellationShield();
  CancellationShield(const CancellationShield&) = delete;
  CancellationShield& operator=(const CancellationShield&) = delete;

 private:
  detail::TaskState* task_;
};

/// A deadline for everything the running task waits for while it lives:
/// "this request, every read and write included, within 2 s".  Each wait
/// that TaskHandle::cancel() would end (socket reads, writes, accepts and
/// connects, this_task::sleepFor(), join(), Notification and
/// ConditionVariable waits) ends at the deadline at the latest, with
/// std::errc::timed_out: the throwing calls throw SystemError(timed_out),
/// the error_code forms return it, and a wait started after the deadline
/// fails at once.  Per-call timeouts still apply inside it.  Mutex::lock()
/// is not bounded (see Mutex), nor is computation that never waits.
///
/// Scopes nest: an inner one never extends an outer, earlier deadline;
/// the destructor restores the enclosing one.  A CancellationShield lifts
/// the deadline while it lives, so that a clean-up may finish.  A negative
/// timeout has passed already; kInfiniteTimeout sets none.  Only inside a
/// task: elsewhere the constructor throws
/// SystemError(std::errc::operation_not_permitted) (plain threads bound
/// each call with the sockets' setTimeout()).  Create and destroy it in
/// the same task (a local variable).
/// @par Example
/// @code
///   this_task::DeadlineScope deadline(std::chrono::seconds(2));
///   socket.writeAll(request.data(), request.size());
///   std::string line = reader.readLine(8192);  // SystemError(timed_out) 2 s after the start
/// @endcode
class EVCHAN_API DeadlineScope {
 public:
  /// Sets the running task's deadline to now + `timeout`, or keeps an
  /// enclosing scope's earlier one.  Throws
  /// SystemError(std::errc::operation_not_permitted) outside a task.
  explicit DeadlineScope(Duration timeout);
  /// Restores the deadline the task had before.
  ~DeadlineScope();
  DeadlineScope(const DeadlineScope&) = delete;
  DeadlineScope& operator=(const DeadlineScope&) = delete;

 private:
  detail::TaskState* task_;
  std::chrono::steady_clock::time_point previous_;
};

/// Calls `function()` under a DeadlineScope of `timeout` and returns what
/// it returns; see DeadlineScope for what the deadline bounds.
template <class Function>
decltype(auto) withTimeout(Duration timeout, Function&& function) {
  DeadlineScope deadline(timeout);
  return std::forward<Function>(function)();
}
}  // namespace this_task

}  // namespace evchan

#endif  // EVCHAN_TASK_H
