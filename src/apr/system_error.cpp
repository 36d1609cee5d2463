// SPDX-License-Identifier: Apache-2.0
// SystemError: std::system_error with the operation and the peer.
#include <evchan/system_error.h>

namespace evchan {
namespace {

std::string describe(const std::string& operation, const std::string& peer) {
  return peer.empty() ? operation : operation + " (peer " + peer + ")";
}

}  // namespace

SystemError::SystemError(std::error_code code, std::string operation, std::string peer)
    : std::system_error(code, describe(operation, peer)),
      operation_(std::move(operation)),
      peer_(std::move(peer)) {}

void throwIfError(const std::error_code& code, const char* operation, const std::string& peer) {
  if (code) throw SystemError(code, operation, peer);
}

}  // namespace evchan
