// SPDX-License-Identifier: Apache-2.0
// The backends of a POSIX build other than Linux, best first.
#include "poller/poller.h"

namespace evchan::detail {

const std::vector<Backend>& compiledBackends() noexcept {
  static const std::vector<Backend> backends = {Backend::Poll, Backend::AprPollset, Backend::Select, Backend::Aio};
  return backends;
}

std::unique_ptr<Poller> createCompiledPoller(Backend backend, std::error_code& ec) {
  switch (backend) {
    case Backend::Poll: return createPollPoller(ec);
    case Backend::Select: return createSelectPoller(ec);
    case Backend::AprPollset: return createAprPollsetPoller(ec);
    case Backend::Aio: return createAioPoller(ec);
    default: break;
  }
  ec = std::make_error_code(std::errc::function_not_supported);
  return nullptr;
}

}  // namespace evchan::detail
