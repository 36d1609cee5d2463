// SPDX-License-Identifier: Apache-2.0
// EVCHAN_API: what the evchan library exports.  The library is built with
// hidden visibility; only declarations marked EVCHAN_API (the public API)
// are visible to programs linking the shared library.
#ifndef EVCHAN_EXPORT_H
#define EVCHAN_EXPORT_H

/// \file
/// The EVCHAN_API export macro; included by every public header.

/// \def EVCHAN_API
/// Marks a declaration as part of the library's exported API: default
/// visibility with GCC and clang, dllexport/dllimport on Windows (where a
/// program linking the static library defines EVCHAN_STATIC).  Nothing for
/// a program to use itself.
#if defined(_WIN32)
// Windows: a program linking the static library defines EVCHAN_STATIC
// (evchan's CMake targets and evchan.pc do it for you).
#if defined(EVCHAN_STATIC)
#define EVCHAN_API
#elif defined(EVCHAN_BUILDING_LIBRARY)
#define EVCHAN_API __declspec(dllexport)
#else
#define EVCHAN_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define EVCHAN_API __attribute__((visibility("default")))
#else
#define EVCHAN_API
#endif

#endif  // EVCHAN_EXPORT_H
