// SPDX-License-Identifier: Apache-2.0
// APR initialisation and per-object pools.
#include "apr/apr_runtime.h"

#include <apr_allocator.h>
#include <apr_general.h>
#include <apr_thread_mutex.h>

#include <evchan/error.h>

#include "apr/fork_hooks.h"
#include "apr/sanitizer_build.h"

namespace evchan::detail {
namespace {

// apr_initialize() is reference counted and cheap after the first call, but
// not safe to race; a function-local static serialises the first call.  APR
// is never terminated: objects may outlive any static destructor we could
// hook, and the OS reclaims the global pool at exit.
apr_status_t initializeAprOnce() noexcept {
  static const apr_status_t status = apr_initialize();
  return status;
}

#ifndef EVCHAN_ASAN
// The shared allocator's lock (below), held across a fork() so that a
// child never finds it held by a thread that stayed in the parent: the
// child's first socket would wait for it for ever.  Set once, before the
// handlers that use it are registered.
apr_thread_mutex_t* sharedAllocatorMutex = nullptr;
void lockSharedAllocator() { apr_thread_mutex_lock(sharedAllocatorMutex); }
void unlockSharedAllocator() { apr_thread_mutex_unlock(sharedAllocatorMutex); }
#endif

// One allocator for every pool: a pool destroyed (a socket closed) gives
// its blocks back to the allocator's free list, and the next pool (the
// next socket accepted) takes them.  With an allocator of its own, each
// pool mapped its first block and unmapped it when destroyed: two system
// calls a connection, and the unmapping interrupts every other CPU that
// runs the process's threads (a TLB shootdown).  The allocator's mutex is
// held only to take or give back blocks.  Like APR, it is never freed.
// Null when APR refuses it: each pool then gets its own, as before.  Under
// AddressSanitizer too, which cannot see into a pool's blocks: there a
// destroyed pool's memory is unmapped, so that code that still uses it
// (a socket used after its close) faults instead of reading a recycled
// block.
apr_allocator_t* sharedAllocator() noexcept {
#ifdef EVCHAN_ASAN
  return nullptr;
#else
  static apr_allocator_t* const shared = []() -> apr_allocator_t* {
    apr_allocator_t* allocator = nullptr;
    if (apr_allocator_create(&allocator) != APR_SUCCESS) return nullptr;
    apr_pool_t* owner = nullptr;
    apr_thread_mutex_t* mutex = nullptr;
    if (apr_pool_create_unmanaged_ex(&owner, nullptr, allocator) != APR_SUCCESS ||
        apr_thread_mutex_create(&mutex, APR_THREAD_MUTEX_DEFAULT, owner) != APR_SUCCESS) {
      if (owner != nullptr) apr_pool_destroy(owner);
      apr_allocator_destroy(allocator);
      return nullptr;
    }
    apr_allocator_owner_set(allocator, owner);
    apr_allocator_mutex_set(allocator, mutex);
    // What it keeps of the blocks pools give back, for the next pools to
    // take: the first 8 KiB block of a thousand sockets.
    apr_allocator_max_free_set(allocator, 8 * 1024 * 1024);
    sharedAllocatorMutex = mutex;
    holdAcrossFork(&lockSharedAllocator, &unlockSharedAllocator);
    return allocator;
  }();
  return shared;
#endif
}

}  // namespace

PoolPtr createPool(std::error_code& ec) noexcept {
  if (apr_status_t status = initializeAprOnce(); status != APR_SUCCESS) {
    ec = makeAprError(status);
    return nullptr;
  }
  apr_pool_t* pool = nullptr;
  if (apr_status_t status = apr_pool_create_unmanaged_ex(&pool, nullptr, sharedAllocator());
      status != APR_SUCCESS) {
    ec = makeAprError(status);
    return nullptr;
  }
  ec.clear();
  return PoolPtr(pool);
}

}  // namespace evchan::detail
