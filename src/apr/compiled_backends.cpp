// SPDX-License-Identifier: Apache-2.0
// The backends of an APR-only POSIX build (--disable-posix); Windows has
// its own (src/win32/compiled_backends.cpp).
#include "poller/poller.h"

namespace evchan::detail {

const std::vector<Backend>& compiledBackends() noexcept {
  static const std::vector<Backend> backends = {Backend::AprPollset};
  return backends;
}

std::unique_ptr<Poller> createCompiledPoller(Backend backend, std::error_code& ec) {
  if (backend == Backend::AprPollset) return createAprPollsetPoller(ec);
  ec = std::make_error_code(std::errc::function_not_supported);
  return nullptr;
}

}  // namespace evchan::detail
