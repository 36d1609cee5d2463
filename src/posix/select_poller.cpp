// SPDX-License-Identifier: Apache-2.0
// The select(2) backend: descriptors below FD_SETSIZE only.
#include <sys/select.h>

#include <algorithm>
#include <cerrno>

#include <evchan/error.h>

#include "posix/interest_set_poller.h"

namespace evchan::detail {
namespace {

class SelectPoller final : public InterestSetPoller {
 public:
  std::error_code open() noexcept { return wakeup_.open(); }
  Backend kind() const noexcept override { return Backend::Select; }
  void wakeup() noexcept override { wakeup_.signal(); }

 protected:
  std::error_code checkDescriptor(apr_os_sock_t fd) const noexcept override {
    // FD_SET beyond FD_SETSIZE writes outside the fd_set.
    return fd >= 0 && fd < FD_SETSIZE ? std::error_code() : make_error_code(Errc::descriptor_too_large);
  }

  std::error_code waitOn(const std::vector<Entry>& entries, std::vector<Readiness>& ready,
                         Deadline deadline) noexcept override {
    fd_set readable, writable;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    FD_SET(wakeup_.readEnd(), &readable);
    int highest = wakeup_.readEnd();
    for (const Entry& entry : entries) {
      if (entry.interest & kReadable) FD_SET(entry.fd, &readable);
      if (entry.interest & kWritable) FD_SET(entry.fd, &writable);
      highest = std::max(highest, entry.fd);
    }
    timeval timeout{};
    timeval* timeoutPointer = nullptr;
    if (deadline != kNoDeadline) {
      const auto us = std::max<std::int64_t>(
          0, std::chrono::ceil<std::chrono::microseconds>(deadline - Clock::now()).count());
      timeout.tv_sec = static_cast<time_t>(us / 1000000);
      timeout.tv_usec = static_cast<suseconds_t>(us % 1000000);
      timeoutPointer = &timeout;
    }
    const int count = ::select(highest + 1, &readable, &writable, nullptr, timeoutPointer);
    if (count < 0) {
      // EBADF: a socket closed since the snapshot; the next wait drops it.
      return errno == EINTR || errno == EBADF ? std::error_code() : makeAprError(errno);
    }
    if (FD_ISSET(wakeup_.readEnd(), &readable)) wakeup_.drain();
    for (const Entry& entry : entries) {
      unsigned flags = 0;
      if ((entry.interest & kReadable) && FD_ISSET(entry.fd, &readable)) flags |= kReadable;
      if ((entry.interest & kWritable) && FD_ISSET(entry.fd, &writable)) flags |= kWritable;
      if (flags != 0) ready.push_back(Readiness{entry.watch, flags});
    }
    return {};
  }

 private:
  WakeupPipe wakeup_;
};

}  // namespace

std::unique_ptr<Poller> createSelectPoller(std::error_code& ec) {
  auto poller = std::make_unique<SelectPoller>();
  if ((ec = poller->open())) return nullptr;
  return poller;
}

}  // namespace evchan::detail
