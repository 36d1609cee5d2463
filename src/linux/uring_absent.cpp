// SPDX-License-Identifier: Apache-2.0
// A Linux build without liburing (configure --with-io-uring=no, or the
// library was not found): the io_uring backend is not compiled in.
#include "poller/poller.h"

namespace evchan::detail {

bool ioUringCompiled() noexcept { return false; }

std::unique_ptr<Poller> createIoUringPoller(std::error_code& ec) {
  ec = std::make_error_code(std::errc::function_not_supported);
  return nullptr;
}

}  // namespace evchan::detail
