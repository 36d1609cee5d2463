# SPDX-License-Identifier: Apache-2.0
# EVCHAN_CHECK_DOC
# ----------------
# "make doc" builds the API reference (doc/html) from the public headers
# with Doxygen.  --enable-doc requires doxygen, --disable-doc turns the
# target off, the default uses doxygen when it is found.  Substitutes
# DOXYGEN (precious: point it at another doxygen) and defines the
# conditional EVCHAN_DOC; evchan_doc says what was decided.
AC_DEFUN([EVCHAN_CHECK_DOC], [
  AC_ARG_ENABLE([doc],
    [AS_HELP_STRING([--enable-doc],
      [build the API reference with Doxygen ("make doc"); --enable-doc fails
       without doxygen, --disable-doc turns it off @<:@default: if doxygen is found@:>@])],
    [], [enable_doc=auto])
  AC_ARG_VAR([DOXYGEN], [the doxygen program "make doc" runs])
  evchan_doc=no
  AS_IF([test "x$enable_doc" != xno], [
    AC_PATH_PROG([DOXYGEN], [doxygen])
    # A DOXYGEN given by the user is taken as is: check that it runs.
    AS_IF([test -n "$DOXYGEN" && "$DOXYGEN" --version >/dev/null 2>&1], [evchan_doc=yes],
          [test "x$enable_doc" = xyes],
          [AC_MSG_ERROR([--enable-doc needs doxygen (Debian: apt-get install doxygen), or set DOXYGEN to a working one])],
          [AC_MSG_WARN([doxygen not found or not working: "make doc" is off])])
  ])
  AM_CONDITIONAL([EVCHAN_DOC], [test "x$evchan_doc" = xyes])
])
