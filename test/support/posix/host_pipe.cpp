// SPDX-License-Identifier: Apache-2.0
// Host pipes on POSIX hosts: pipe(2), read(2), write(2), close(2).
#include "support/host_pipe.h"

#include <unistd.h>

namespace evchan::test {

bool makeHostPipe(int descriptors[2]) { return ::pipe(descriptors) == 0; }

long readHostPipe(int descriptor, void* buffer, std::size_t size) {
  return static_cast<long>(::read(descriptor, buffer, size));
}

long writeHostPipe(int descriptor, const void* data, std::size_t size) {
  return static_cast<long>(::write(descriptor, data, size));
}

void closeHostPipe(int descriptor) { ::close(descriptor); }

}  // namespace evchan::test
