// SPDX-License-Identifier: Apache-2.0
// SignalSet and waitForSignal(): waiting for SIGINT, SIGTERM and the like,
// in a task (the task is suspended) or on a thread (it blocks).
#ifndef EVCHAN_SIGNAL_SET_H
#define EVCHAN_SIGNAL_SET_H

#include <csignal>
#include <initializer_list>
#include <memory>
#include <system_error>

#include <evchan/duration.h>
#include <evchan/export.h>

namespace evchan {

namespace detail {
class SignalSource;
}

/// Catches a set of signals from its construction to its destruction and
/// hands them out, one wait() each, in the order they arrived.
///
/// How (POSIX): the constructor installs a handler for each signal
/// (sigaction) that writes the signal's number into a socket pair the set
/// owns; wait() reads it.  The handler runs on whichever thread the kernel
/// picks, so no thread's signal mask has to change: a signal the set
/// catches never takes its default action (ending the process) while the
/// set lives.  The destructor puts back the dispositions it found (the
/// last set catching a signal does).  Several sets may catch the same
/// signal: each receives every delivery.  A child made by fork() starts
/// with the dispositions the sets found: the parent's sets catch nothing
/// there, and a set the child makes catches the child's signals.  The
/// child's waits on a parent's set fail with Errc::not_open: the set's
/// socket pair is the parent's too, and a wait would take the parent's
/// signals.  On Windows the set catches the console's control events
/// (SetConsoleCtrlHandler): Ctrl+C is SIGINT; Ctrl+Break, closing the
/// console, logoff and system shutdown are SIGTERM; only these two
/// numbers are accepted there.
///
/// The masking rule: do not block the set's signals in every thread (a
/// signal blocked everywhere stays pending and is never delivered), and
/// create the set before the signal can come: until then the old
/// disposition applies.  A server creates it first thing in main(),
/// before it listens and starts its EventChannel.  A handler of another
/// library for the same signal is replaced while the set lives.
///
/// Coalescing: the kernel keeps one pending instance of a standard signal,
/// so the same signal sent several times before the handler ran is one
/// delivery; distinct deliveries are each handed out, in order.  Signals
/// caught and not yet waited for stay queued in the set, however many:
/// past the few hundred bytes the socket pair holds, the set counts each
/// signal's further deliveries instead and hands them out once the bytes
/// before them are read; the order between different signals is then not
/// kept for those.
///
/// Thread safety: one wait at a time per set (a second concurrent wait
/// fails with std::errc::device_or_resource_busy: which waiter would get
/// the signal is otherwise a coin toss); construction and destruction of
/// sets are safe from any threads at once.  At most 64 sets live at once
/// (std::errc::too_many_files_open beyond).
/// @par Example
/// @code
///   int main() {
///     evchan::SignalSet stop({SIGINT, SIGTERM});   // first: from now on they are caught
///     ... listen, create the channel, spawn the acceptor ...
///     const int signal = stop.wait();              // blocks main; in a task it suspends the task
///     ... stop accepting, drain the connections, shut down ...
///   }
/// @endcode
class EVCHAN_API SignalSet {
 public:
  /// Starts catching `signals`.  Throws SystemError(std::errc::invalid_argument)
  /// for an empty list or a signal that cannot be caught: SIGKILL, SIGSTOP,
  /// the fault signals the library or the program needs for itself
  /// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP), numbers out of range; and
  /// SystemError with the system's error when a descriptor or the
  /// handler cannot be set up.
  explicit SignalSet(std::initializer_list<int> signals);
  /// Stops catching: the signals' previous dispositions come back (once
  /// no other set catches them); signals caught and not waited for are
  /// dropped.  Must not run while a wait() on this set is in progress.
  ~SignalSet();
  /// Moves the set; the moved-from set's waits fail with Errc::not_open.
  SignalSet(SignalSet&& other) noexcept;
  /// Destroys this set (as the destructor does) and takes `other`'s.
  SignalSet& operator=(SignalSet&& other) noexcept;
  SignalSet(const SignalSet&) = delete;
  SignalSet& operator=(const SignalSet&) = delete;

  ///@{
  /// Waits for the next signal of the set and returns its number; one
  /// already caught is returned at once.  Inside a task the task is
  /// suspended (its worker runs other tasks) and the wait is a
  /// cancellation point: TaskHandle::cancel() or the channel's shutdown
  /// end it with std::errc::operation_canceled.  On a thread it blocks
  /// the thread.  The throwing form throws SystemError; the other returns
  /// 0 with `ec` set (operation_canceled, Errc::not_open for a moved-from
  /// set or in a child forked since the set was made,
  /// std::errc::device_or_resource_busy when another wait on the set is
  /// in progress).
  int wait();
  int wait(std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// As wait(), but waits at most `timeout` (zero: only looks); returns 0
  /// when it passes, which is not an error.  A negative timeout is
  /// Errc::negative_timeout.
  int waitFor(Duration timeout);
  int waitFor(Duration timeout, std::error_code& ec) noexcept;
  ///@}

 private:
  std::unique_ptr<detail::SignalSource> source_;
};

/// Waits for one of `signals`, as SignalSet(signals).wait() does, and
/// returns its number: in a task the task is suspended, on a thread the
/// thread blocks.  Signals are caught only from the call on; to catch one
/// that arrives earlier (during start-up), create a SignalSet first and
/// wait on it.  Throws as SignalSet's constructor and wait() do.
EVCHAN_API int waitForSignal(std::initializer_list<int> signals);

}  // namespace evchan

#endif  // EVCHAN_SIGNAL_SET_H
