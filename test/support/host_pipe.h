// SPDX-License-Identifier: Apache-2.0
// A pipe of the host's C runtime, for tasks that block in a real read
// (each host's way: support/{posix,win32}/host_pipe.cpp).
#ifndef EVCHAN_TEST_SUPPORT_HOST_PIPE_H
#define EVCHAN_TEST_SUPPORT_HOST_PIPE_H

#include <cstddef>

namespace evchan::test {

/// Makes a blocking pipe (pipe(2); Windows: the C runtime's _pipe):
/// descriptors[0] reads, descriptors[1] writes.  False on failure.
bool makeHostPipe(int descriptors[2]);
/// read(2) on a pipe's read end: bytes read, 0 at its end, -1 on error.
/// Blocks the calling thread until data, the end or an error.
long readHostPipe(int descriptor, void* buffer, std::size_t size);
/// write(2) on a pipe's write end: bytes written, -1 on error.
long writeHostPipe(int descriptor, const void* data, std::size_t size);
/// close(2).
void closeHostPipe(int descriptor);

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_HOST_PIPE_H
