// SPDX-License-Identifier: Apache-2.0
// Event: the unit of work posted to an EventChannel.
#ifndef EVCHAN_EVENT_H
#define EVCHAN_EVENT_H

#include <atomic>
#include <functional>
#include <system_error>

#include <evchan/export.h>

namespace evchan {

namespace detail {
struct EventAccess;
}

/// A request posted to an EventChannel and handed back, completed, with its
/// result filled in.  The caller owns the event; the channel borrows it from
/// post() until it is returned by getEvent() or passed to its callback, and
/// only then may the caller touch, re-post or destroy it.  Destroying an
/// event while it is in flight is a programming error: the process aborts
/// with a message rather than let the channel use freed memory.
///
/// Shutdown releases what it completes: once EventChannel::shutdown() has
/// returned, an event without a callback that the channel holds for
/// getEvent() (completed, not yet taken) may be destroyed; it is taken out
/// of the channel, which never returns it.  Destroying the EventChannel
/// hands back every event it still holds (inFlight() false), so they may
/// also be destroyed after the channel, in either order.
///
/// With a callback, a worker thread of the channel runs it on completion
/// (the event is no longer in flight then, so the callback may re-post it).
/// Without one, the event is returned by EventChannel::getEvent().
class EVCHAN_API Event {
 public:
  /// Which subclass an event is (ReadEvent, TimerEvent, FileReadEvent,
  /// ResolveEvent, DatagramReceiveEvent, DescriptorSendEvent, ...).
  enum class Kind {
    Read, Write, Accept, Connect, Timer, Notify, Dispatch, FileRead, FileWrite, Resolve,
    DatagramReceive, DatagramSend, DescriptorSend, DescriptorReceive
  };
  /// A completion callback: called on a worker thread with the completed event.
  using Callback = std::function<void(Event&)>;

  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  virtual ~Event();

  /// The subclass this event is; fixed at construction.
  Kind kind() const noexcept { return kind_; }

  /// The result once completed: empty on success; std::errc::operation_canceled
  /// when the channel shut down first; otherwise the operation's error.
  const std::error_code& error() const noexcept { return error_; }

  /// True from a successful post() until the event is handed back.
  bool inFlight() const noexcept { return inFlight_.load(std::memory_order_acquire); }

  /// Sets (or clears, with an empty function) the completion callback.
  /// Fails with Errc::already_in_flight while the event is in flight.
  void setCallback(Callback callback);

 protected:
  /// For the subclasses: each passes its own Kind.
  explicit Event(Kind kind) noexcept : kind_(kind) {}

 private:
  friend struct detail::EventAccess;

  const Kind kind_;
  std::error_code error_;
  Callback callback_;
  std::atomic<bool> inFlight_{false};
  Event* next_ = nullptr;  // the channel's intrusive queue link while in flight
  bool started_ = false;   // a DispatchEvent whose function already ran
  bool runnable_ = false;  // the channel's own detail::RunnableEvent (a task to resume)
  bool wakesTask_ = false;  // written by every post: the callback only wakes the task waiting for it
};

}  // namespace evchan

#endif  // EVCHAN_EVENT_H
