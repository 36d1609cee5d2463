// SPDX-License-Identifier: Apache-2.0
// Host pipes on Windows hosts: the C runtime's _pipe, _read, _write and
// _close (an anonymous pipe underneath, whose reads block the thread).
#include "support/host_pipe.h"

#include <fcntl.h>
#include <io.h>

namespace evchan::test {

bool makeHostPipe(int descriptors[2]) { return ::_pipe(descriptors, 4096, _O_BINARY) == 0; }

long readHostPipe(int descriptor, void* buffer, std::size_t size) {
  return ::_read(descriptor, buffer, static_cast<unsigned>(size));
}

long writeHostPipe(int descriptor, const void* data, std::size_t size) {
  return ::_write(descriptor, data, static_cast<unsigned>(size));
}

void closeHostPipe(int descriptor) { ::_close(descriptor); }

}  // namespace evchan::test
