// SPDX-License-Identifier: Apache-2.0
// The poll(2) backend.
#include <poll.h>

#include <cerrno>
#include <climits>

#include <evchan/error.h>

#include "posix/interest_set_poller.h"

namespace evchan::detail {
namespace {

class PollPoller final : public InterestSetPoller {
 public:
  std::error_code open() noexcept { return wakeup_.open(); }
  Backend kind() const noexcept override { return Backend::Poll; }
  void wakeup() noexcept override { wakeup_.signal(); }

 protected:
  std::error_code checkDescriptor(apr_os_sock_t) const noexcept override { return {}; }

  std::error_code waitOn(const std::vector<Entry>& entries, std::vector<Readiness>& ready,
                         Deadline deadline) noexcept override {
    fds_.resize(entries.size() + 1);
    fds_[0] = pollfd{wakeup_.readEnd(), POLLIN, 0};
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const short events = static_cast<short>(((entries[i].interest & kReadable) ? POLLIN : 0) |
                                              ((entries[i].interest & kWritable) ? POLLOUT : 0));
      fds_[i + 1] = pollfd{entries[i].fd, events, 0};
    }
    const int timeoutMs = timeoutMilliseconds(deadline);
    const int count = ::poll(fds_.data(), fds_.size(), timeoutMs);
    if (count < 0) return errno == EINTR ? std::error_code() : makeAprError(errno);
    if (fds_[0].revents != 0) wakeup_.drain();
    for (std::size_t i = 1; i < fds_.size() && count > 0; ++i) {
      const short revents = fds_[i].revents;
      if (revents == 0) continue;
      // Errors and hang-ups wake both directions: the next operation reports them.
      const bool failed = (revents & (POLLERR | POLLHUP | POLLNVAL)) != 0;
      unsigned flags = 0;
      if (failed || (revents & POLLIN)) flags |= kReadable;
      if (failed || (revents & POLLOUT)) flags |= kWritable;
      ready.push_back(Readiness{entries[i - 1].watch, flags});
    }
    return {};
  }

 private:
  WakeupPipe wakeup_;
  std::vector<pollfd> fds_;
};

}  // namespace

std::unique_ptr<Poller> createPollPoller(std::error_code& ec) {
  auto poller = std::make_unique<PollPoller>();
  if ((ec = poller->open())) return nullptr;
  return poller;
}

}  // namespace evchan::detail
