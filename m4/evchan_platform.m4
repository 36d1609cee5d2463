# SPDX-License-Identifier: Apache-2.0
# EVCHAN_CHECK_PLATFORM
# ---------------------
# Decides which platform files are compiled.  Platform code is picked by
# whole files through these conditionals, never by #ifdef ladders:
#   EVCHAN_WIN32  the host is Windows (files under src/win32/)
#   EVCHAN_POSIX  the native POSIX layer is built (files under src/posix/):
#                 sockets wait with poll(2); the poll, select and aio backends.
#                 Without it the portable APR layer alone is built, as on
#                 Windows: the apr_pollset backend only.
#   EVCHAN_LINUX  the native layer on Linux adds src/linux/: the epoll
#                 backend, CPU detection through affinity and cgroups, the
#                 shared-memory stream.
#   EVCHAN_LINUX_HOST  the host is Linux, with or without the native layer:
#                 the host calls only Linux has, which the portable layer
#                 uses too (src/linux/file_lease_open.cpp).
#   EVCHAN_TASKS  tasks are built: with the native POSIX layer (Boost.Context
#                 and ucontext on mmap'ed stacks) or on Windows (Win32
#                 fibers); APR-only POSIX builds (--disable-posix) have none.
AC_DEFUN([EVCHAN_CHECK_PLATFORM], [
  AC_REQUIRE([AC_CANONICAL_HOST])
  evchan_win32=no
  evchan_linux=no
  case "$host_os" in
    mingw*|cygwin*|msys*|windows*) evchan_win32=yes ;;
    linux*) evchan_linux=yes ;;
  esac

  AC_ARG_ENABLE([posix],
    [AS_HELP_STRING([--disable-posix],
      [build only the portable APR layer (what Windows gets), without the
       native POSIX layer @<:@default: enabled on POSIX hosts@:>@])],
    [], [enable_posix=auto])
  AS_CASE(["x$enable_posix"],
    [xauto], [AS_IF([test "x$evchan_win32" = xyes], [evchan_posix=no], [evchan_posix=yes])],
    [xyes],  [AS_IF([test "x$evchan_win32" = xyes],
                [AC_MSG_ERROR([--enable-posix cannot be used on a Windows host])])
              evchan_posix=yes],
    [xno],   [evchan_posix=no],
    [AC_MSG_ERROR([bad value "$enable_posix" for --enable-posix])])

  AS_IF([test "x$evchan_posix" = xyes], [
    AC_CHECK_HEADERS([aio.h poll.h sys/select.h sys/socket.h], [],
      [AC_MSG_ERROR([the native POSIX layer needs <$ac_header>; use --disable-posix])])
    # POSIX aio (the aio backend): in libc since glibc 2.34, in librt before.
    AC_SEARCH_LIBS([aio_read], [rt], [],
      [AC_MSG_ERROR([the native POSIX layer needs POSIX aio (aio_read); use --disable-posix])])
  ])
  AS_IF([test "x$evchan_posix" = xyes && test "x$evchan_linux" = xyes], [
    AC_CHECK_HEADERS([sys/epoll.h sys/eventfd.h], [],
      [AC_MSG_ERROR([the Linux layer needs <$ac_header>])])
    # The shared-memory stream's segments (glibc 2.27; the kernel's support,
    # Linux 3.17, is found at run time: ENOSYS from connect).
    AC_CHECK_FUNCS([memfd_create], [],
      [AC_MSG_ERROR([the Linux layer needs memfd_create (glibc 2.27 or later)])])
  ], [evchan_linux=no])
  AS_CASE(["$host_os"], [linux*], [evchan_linux_host=yes], [evchan_linux_host=no])

  AM_CONDITIONAL([EVCHAN_WIN32], [test "x$evchan_win32" = xyes])
  AM_CONDITIONAL([EVCHAN_POSIX], [test "x$evchan_posix" = xyes])
  AM_CONDITIONAL([EVCHAN_LINUX], [test "x$evchan_linux" = xyes])
  AM_CONDITIONAL([EVCHAN_LINUX_HOST], [test "x$evchan_linux_host" = xyes])
  AM_CONDITIONAL([EVCHAN_TASKS], [test "x$evchan_posix" = xyes || test "x$evchan_win32" = xyes])
])

# EVCHAN_CHECK_TESTS
# ------------------
# The unit suites need CppUnit.  Without it the library still builds and
# installs; "make check" then stops with a message naming the package.
AC_DEFUN([EVCHAN_CHECK_TESTS], [
  AC_ARG_ENABLE([tests],
    [AS_HELP_STRING([--disable-tests],
      [do not look for CppUnit; "make check" is then unavailable @<:@default: auto@:>@])],
    [], [enable_tests=auto])
  evchan_tests=no
  AS_IF([test "x$enable_tests" != xno], [
    PKG_CHECK_MODULES([CPPUNIT], [cppunit >= 1.13], [evchan_tests=yes], [
      AS_IF([test "x$enable_tests" = xyes], [AC_MSG_ERROR([$CPPUNIT_PKG_ERRORS])])
      AC_MSG_WARN([CppUnit not found: the library builds, "make check" will not])
    ])
  ])
  AM_CONDITIONAL([EVCHAN_TESTS], [test "x$evchan_tests" = xyes])
])

# EVCHAN_CHECK_WARNINGS
# ---------------------
# -Wall -Wextra always; --enable-werror turns them into errors (CI uses it).
AC_DEFUN([EVCHAN_CHECK_WARNINGS], [
  AC_ARG_ENABLE([werror],
    [AS_HELP_STRING([--enable-werror], [treat compiler warnings as errors @<:@default: no@:>@])],
    [], [enable_werror=no])
  EVCHAN_WARN_CXXFLAGS="-Wall -Wextra"
  AS_IF([test "x$enable_werror" = xyes],
    [EVCHAN_WARN_CXXFLAGS="$EVCHAN_WARN_CXXFLAGS -Werror"])
  AC_SUBST([EVCHAN_WARN_CXXFLAGS])
])

# EVCHAN_CHECK_STACK_CLASH
# ------------------------
# -fstack-clash-protection where the compiler has it: a function whose
# frame spans several pages touches each page in turn as it allocates the
# frame, so a frame larger than a task stack's guard reserve still faults
# in the guard (and is reported as a task stack overflow) instead of
# writing past it.  The library, its tests and benches use it; docs/tasks.md
# recommends it to users for their task code.
AC_DEFUN([EVCHAN_CHECK_STACK_CLASH], [
  EVCHAN_STACK_CLASH_CXXFLAGS=
  AX_CHECK_COMPILE_FLAG([-fstack-clash-protection],
    [EVCHAN_STACK_CLASH_CXXFLAGS=-fstack-clash-protection], [], [-Werror])
  AM_CONDITIONAL([EVCHAN_STACK_CLASH], [test "x$EVCHAN_STACK_CLASH_CXXFLAGS" != x])
  AC_SUBST([EVCHAN_STACK_CLASH_CXXFLAGS])
])

# EVCHAN_CHECK_ASAN_PROGRAM
# -------------------------
# Whether $CXX, with the flags given, also links a program built with
# -fsanitize=address (not beside -fsanitize=thread, not without the
# runtime): then test/asan_program_test links this build of evchan into
# such a program, as a user who builds only their own code with ASan does.
AC_DEFUN([EVCHAN_CHECK_ASAN_PROGRAM], [
  AC_CACHE_CHECK([whether $CXX links a program built with -fsanitize=address],
    [evchan_cv_asan_program], [
    AC_LANG_PUSH([C++])
    evchan_save_CXXFLAGS=$CXXFLAGS
    evchan_save_LDFLAGS=$LDFLAGS
    CXXFLAGS="$CXXFLAGS -fsanitize=address"
    LDFLAGS="$LDFLAGS -fsanitize=address"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <stdexcept>]], [[throw std::runtime_error("x");]])],
      [evchan_cv_asan_program=yes], [evchan_cv_asan_program=no])
    CXXFLAGS=$evchan_save_CXXFLAGS
    LDFLAGS=$evchan_save_LDFLAGS
    AC_LANG_POP([C++])
  ])
  AM_CONDITIONAL([EVCHAN_ASAN_PROGRAM], [test "x$evchan_cv_asan_program" = xyes])
])

# EVCHAN_CHECK_CONTEXT
# --------------------
# Tasks switch contexts through Boost.Context's fcontext (fast) or POSIX
# ucontext (the seed's).  Both are built in the native POSIX layer and
# both are tested; --with-context picks the one tasks use by default.
# Boost.Context is therefore required there (Debian: libboost-context-dev).
AC_DEFUN([EVCHAN_CHECK_CONTEXT], [
  AC_ARG_WITH([context],
    [AS_HELP_STRING([--with-context=boost|ucontext],
      [the context switch tasks use by default @<:@default: boost@:>@])],
    [], [with_context=boost])
  AS_CASE(["x$with_context"],
    [xboost|xucontext], [],
    [AC_MSG_ERROR([bad value "$with_context" for --with-context (boost or ucontext)])])
  BOOST_CONTEXT_LIBS=
  AS_IF([test "x$evchan_posix" = xyes], [
    AC_CHECK_HEADERS([ucontext.h], [],
      [AC_MSG_ERROR([the native POSIX layer needs <ucontext.h>])])
    AC_CHECK_HEADER([boost/context/detail/fcontext.hpp], [],
      [AC_MSG_ERROR([Boost.Context not found (Debian: libboost-context-dev)])])
    evchan_save_LIBS=$LIBS
    LIBS="-lboost_context $LIBS"
    AC_MSG_CHECKING([for -lboost_context])
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <boost/context/detail/fcontext.hpp>]],
        [[boost::context::detail::jump_fcontext(nullptr, nullptr);]])],
      [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])
       AC_MSG_ERROR([cannot link Boost.Context (Debian: libboost-context-dev)])])
    LIBS=$evchan_save_LIBS
    BOOST_CONTEXT_LIBS=-lboost_context
  ], [with_context=none])
  AC_SUBST([BOOST_CONTEXT_LIBS])
  AM_CONDITIONAL([EVCHAN_DEFAULT_UCONTEXT], [test "x$with_context" = xucontext])
])


# EVCHAN_CHECK_VISIBILITY
# -----------------------
# The library is compiled with hidden visibility where the compiler has it:
# only what the public headers mark EVCHAN_API is exported, so internals
# (evchan::detail) stay private and can change without breaking the ABI.
# EVCHAN_HIDDEN_VISIBILITY says so to make check (test/check-exports).
AC_DEFUN([EVCHAN_CHECK_VISIBILITY], [
  EVCHAN_VISIBILITY_CXXFLAGS=
  AX_CHECK_COMPILE_FLAG([-fvisibility=hidden],
    [EVCHAN_VISIBILITY_CXXFLAGS="-fvisibility=hidden -fvisibility-inlines-hidden"], [], [-Werror])
  AS_IF([test "x$evchan_win32" = xyes], [EVCHAN_VISIBILITY_CXXFLAGS=])
  AM_CONDITIONAL([EVCHAN_HIDDEN_VISIBILITY], [test "x$EVCHAN_VISIBILITY_CXXFLAGS" != x])
  AC_SUBST([EVCHAN_VISIBILITY_CXXFLAGS])
])
