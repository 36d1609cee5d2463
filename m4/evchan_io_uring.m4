# SPDX-License-Identifier: Apache-2.0
# EVCHAN_CHECK_IO_URING
# ---------------------
# The io_uring backend (src/linux/uring_poller.cpp) needs liburing >= 2.3,
# found by pkg-config, and the Linux layer.  --with-io-uring=auto (the
# default) builds it when both are there, yes insists, no leaves it out
# (src/linux/uring_absent.cpp then says "not compiled in").  Whether the
# running kernel accepts a ring is probed at run time, never here.
#   EVCHAN_IO_URING        AM_CONDITIONAL: the backend is built
#   LIBURING_CFLAGS/LIBS   from pkg-config
#   EVCHAN_PC_URING        "liburing" for evchan.pc's Requires.private
AC_DEFUN([EVCHAN_CHECK_IO_URING], [
  AC_REQUIRE([EVCHAN_CHECK_PLATFORM])
  AC_ARG_WITH([io-uring],
    [AS_HELP_STRING([--with-io-uring=auto|yes|no],
      [build the io_uring EventChannel backend (Linux, liburing) @<:@default: auto@:>@])],
    [], [with_io_uring=auto])
  AS_CASE(["x$with_io_uring"],
    [xauto|xyes|xno], [],
    [AC_MSG_ERROR([bad value "$with_io_uring" for --with-io-uring (auto, yes or no)])])
  evchan_io_uring=no
  EVCHAN_PC_URING=
  AS_IF([test "x$with_io_uring" != xno], [
    AS_IF([test "x$evchan_linux" = xyes], [
      PKG_CHECK_MODULES([LIBURING], [liburing >= 2.3], [evchan_io_uring=yes], [
        AS_IF([test "x$with_io_uring" = xyes],
          [AC_MSG_ERROR([--with-io-uring: $LIBURING_PKG_ERRORS (Debian: liburing-dev)])])
        AC_MSG_WARN([liburing >= 2.3 not found: the io_uring backend is not built])
      ])
    ], [
      AS_IF([test "x$with_io_uring" = xyes],
        [AC_MSG_ERROR([--with-io-uring needs the Linux layer (a Linux host without --disable-posix)])])
    ])
  ])
  AS_IF([test "x$evchan_io_uring" = xyes], [EVCHAN_PC_URING=liburing])
  AC_SUBST([EVCHAN_PC_URING])
  AM_CONDITIONAL([EVCHAN_IO_URING], [test "x$evchan_io_uring" = xyes])
])
