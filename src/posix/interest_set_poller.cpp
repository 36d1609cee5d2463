// SPDX-License-Identifier: Apache-2.0
// InterestSetPoller and WakeupPipe (POSIX).
#include "posix/interest_set_poller.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <evchan/error.h>

namespace evchan::detail {

std::error_code InterestSetPoller::add(Watch& watch) noexcept { return checkDescriptor(watch.fd); }

std::error_code InterestSetPoller::setInterest(Watch& watch, unsigned interest) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (interest == 0) {
    interest_.erase(&watch);
  } else {
    interest_[&watch] = Entry{&watch, watch.fd, interest};
  }
  changed_ = true;
  // The polling thread itself changes interest between waits; only a wait
  // in progress has to be interrupted to pick the change up.
  if (waiting_) wakeup();
  return {};
}

void InterestSetPoller::remove(Watch& watch) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (interest_.erase(&watch) == 0) return;
  changed_ = true;
  // A wait in progress may still report the stale descriptor (the channel
  // ignores reports for retired watches), and it holds the socket: on
  // Linux a poll(2) or select(2) keeps a reference to each file it waits
  // on, so the close that follows would end the connection (its FIN, or
  // closeWithReset()'s RST) only once that wait ended by itself.
  if (waiting_) wakeup();
}

std::error_code InterestSetPoller::wait(std::vector<Readiness>& ready, Deadline deadline) noexcept {
  ready.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (changed_) {
      snapshot_.clear();
      snapshot_.reserve(interest_.size());
      for (const auto& item : interest_) snapshot_.push_back(item.second);
      changed_ = false;
    }
    waiting_ = true;
  }
  const std::error_code ec = waitOn(snapshot_, ready, deadline);
  std::lock_guard<std::mutex> lock(mutex_);
  waiting_ = false;
  return ec;
}

WakeupPipe::~WakeupPipe() {
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

std::error_code WakeupPipe::open() noexcept {
  if (::pipe(fds_) != 0) return makeAprError(errno);
  for (int fd : fds_) {
    if (::fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return makeAprError(errno);
  }
  return {};
}

void WakeupPipe::signal() noexcept {
  const char byte = 1;
  // A full pipe already guarantees a wake-up; nothing to do on EAGAIN.
  while (::write(fds_[1], &byte, 1) < 0 && errno == EINTR) {
  }
}

void WakeupPipe::drain() noexcept {
  char buffer[64];
  while (::read(fds_[0], buffer, sizeof buffer) > 0) {
  }
}

}  // namespace evchan::detail
