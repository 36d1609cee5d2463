// SPDX-License-Identifier: Apache-2.0
// WatchHandle: a socket's registrations with event channels.
#include "poller/watch_handle.h"

#include "channel/channel_core.h"

namespace evchan::detail {

WatchHandle::~WatchHandle() {
  Registration* registration = registrations_.load(std::memory_order_acquire);
  while (registration != nullptr) {
    Registration* next = registration->next;
    registration->core->retireWatch(registration->watch);
    if (registration != &first_) delete registration;
    registration = next;
  }
}

Watch* WatchHandle::registeredIn(const ChannelCore& core) const noexcept {
  for (Registration* r = registrations_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    if (r->core.get() == &core) return r->watch;
  }
  return nullptr;
}

Watch* WatchHandle::watchIn(ChannelCore& core, apr_socket_t* socket, std::error_code& ec) {
  // Every post on the socket comes here: once registered, no lock.
  if (Watch* watch = registeredIn(core)) {
    ec.clear();
    return watch;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (Watch* watch = registeredIn(core)) {
    ec.clear();
    return watch;
  }
  // A socket used on another channel before keeps that registration too:
  // an event still pending there completes there, and nothing that may
  // hold its Watch (a post racing this one, a poll reporting it) can see
  // it freed before the socket closes.
  Registration* head = registrations_.load(std::memory_order_relaxed);
  std::unique_ptr<Registration> more;
  if (head != nullptr) more = std::make_unique<Registration>();  // before addWatch(): nothing to undo
  Watch* watch = core.addWatch(socket, ec);
  if (watch == nullptr) return nullptr;
  Registration* registration = head == nullptr ? &first_ : more.release();
  registration->core = core.shared_from_this();
  registration->watch = watch;
  registration->next = head;
  registrations_.store(registration, std::memory_order_release);
  return watch;
}

}  // namespace evchan::detail
