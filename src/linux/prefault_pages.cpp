// SPDX-License-Identifier: Apache-2.0
// prefaultPages() on Linux: MADV_POPULATE_WRITE (5.14 on), for many
// scattered pages in one process_madvise() call where the kernel takes
// that advice for the calling process (6.13 on), one madvise() a page
// where it does not.
#include "posix/prefault_pages.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // uapi asm-generic/mman-common.h
#endif

namespace evchan::detail {
namespace {

enum class Way { unknown, batched, onePerPage, none };
std::atomic<Way> way{Way::unknown};

std::size_t pageSize() noexcept {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// EINVAL: this kernel does not know the advice (or, through
// process_madvise, does not take it for the calling process); ENOSYS and
// EPERM: the call itself is missing or filtered.  Anything else (out of
// memory or descriptors) is this call's failure only.
bool refused(int error) noexcept { return error == EINVAL || error == ENOSYS || error == EPERM; }

enum class Outcome { done, refused, failed };

#if defined(SYS_process_madvise) && defined(SYS_pidfd_open)
// One call for every page.  The pidfd is opened for the call and closed
// after it: no descriptor outlives prefaultPages().
Outcome populateBatched(void* const* pages, std::size_t count) noexcept {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  if (pidfd < 0) return refused(errno) ? Outcome::refused : Outcome::failed;
  iovec ranges[kPrefaultMaxPages];
  for (std::size_t i = 0; i < count; ++i) ranges[i] = iovec{pages[i], pageSize()};
  long done;
  do {
    done = ::syscall(SYS_process_madvise, pidfd, ranges, count, MADV_POPULATE_WRITE, 0u);
  } while (done < 0 && errno == EINTR);
  const int error = errno;
  ::close(pidfd);
  if (done >= 0) return Outcome::done;
  return refused(error) ? Outcome::refused : Outcome::failed;
}
#else
Outcome populateBatched(void* const*, std::size_t) noexcept { return Outcome::refused; }
#endif

Outcome populateOnePerPage(void* const* pages, std::size_t count) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    if (::madvise(pages[i], pageSize(), MADV_POPULATE_WRITE) != 0 && refused(errno)) return Outcome::refused;
  }
  return Outcome::done;
}

}  // namespace

void prefaultPages(void* const* pages, std::size_t count) noexcept {
  if (count > kPrefaultMaxPages) count = kPrefaultMaxPages;
  if (count == 0) return;
  Way now = way.load(std::memory_order_relaxed);
  if (now == Way::unknown || now == Way::batched) {
    const Outcome outcome = populateBatched(pages, count);
    if (outcome != Outcome::refused) {
      if (outcome == Outcome::done) way.store(Way::batched, std::memory_order_relaxed);
      return;  // or failed this once: the pages fault on first use
    }
    now = Way::onePerPage;
  }
  if (now == Way::onePerPage) {
    way.store(populateOnePerPage(pages, count) == Outcome::done ? Way::onePerPage : Way::none,
              std::memory_order_relaxed);
  }
}

}  // namespace evchan::detail
