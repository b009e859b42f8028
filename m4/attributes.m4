dnl SPDX-License-Identifier: LGPL-2.1-or-later
dnl
dnl attributes.m4 - probe compiler and linker flags one at a time and collect
dnl the ones that work in a variable of our own.  The user's CFLAGS and
dnl LDFLAGS are never modified: the results go to variables that Makefile.am
dnl puts into AM_CFLAGS / AM_LDFLAGS, which come *before* the user's flags on
dnl every command line, so the user keeps the last word.
dnl
dnl Every probe runs with -Werror: clang only warns about unknown -W options
dnl and glibc only warns (#warning) about -D_FORTIFY_SOURCE without
dnl optimisation, and a flag that warns would break --enable-werror builds.

dnl SGL_PROBE_CFLAGS / SGL_PROBE_LDFLAGS: flags already chosen that every
dnl later probe must be tested together with (the sanitizers).

dnl SGL_CHECK_CFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
dnl   Compiles and links a small program with $CFLAGS FLAG -Werror.  Cached.
AC_DEFUN([SGL_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([sgl_cache], [sgl_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [sgl_cache], [
    sgl_save_CFLAGS=$CFLAGS
    sgl_save_LDFLAGS=$LDFLAGS
    CFLAGS="$CFLAGS $SGL_PROBE_CFLAGS $1 -Werror"
    LDFLAGS="$LDFLAGS $SGL_PROBE_LDFLAGS"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <stdio.h>
#include <string.h>]],
        [[char buf[16]; snprintf(buf, sizeof(buf), "%d", 1);
          return (int)strlen(buf) - 1;]])],
      [AS_VAR_SET([sgl_cache], [yes])],
      [AS_VAR_SET([sgl_cache], [no])])
    CFLAGS=$sgl_save_CFLAGS
    LDFLAGS=$sgl_save_LDFLAGS])
  AS_VAR_IF([sgl_cache], [yes], [$2], [$3])
  AS_VAR_POPDEF([sgl_cache])
])

dnl SGL_CHECK_LDFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
dnl   Links a small program with $LDFLAGS FLAG (compiler -Werror).  Cached.
AC_DEFUN([SGL_CHECK_LDFLAG], [
  AS_VAR_PUSHDEF([sgl_cache], [sgl_cv_ldflag_$1])
  AC_CACHE_CHECK([whether the linker accepts $1], [sgl_cache], [
    sgl_save_CFLAGS=$CFLAGS
    sgl_save_LDFLAGS=$LDFLAGS
    CFLAGS="$CFLAGS $SGL_PROBE_CFLAGS -Werror"
    LDFLAGS="$LDFLAGS $SGL_PROBE_LDFLAGS $1"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [[return 0;]])],
      [AS_VAR_SET([sgl_cache], [yes])],
      [AS_VAR_SET([sgl_cache], [no])])
    CFLAGS=$sgl_save_CFLAGS
    LDFLAGS=$sgl_save_LDFLAGS])
  AS_VAR_IF([sgl_cache], [yes], [$2], [$3])
  AS_VAR_POPDEF([sgl_cache])
])

dnl SGL_APPEND_CFLAGS(VARIABLE, FLAGS...)
dnl   Appends to VARIABLE each of FLAGS that the compiler accepts.
AC_DEFUN([SGL_APPEND_CFLAGS], [
  for sgl_flag in $2; do
    SGL_CHECK_CFLAG([$sgl_flag], [AS_VAR_APPEND([$1], [" $sgl_flag"])])
  done
])

dnl SGL_APPEND_LDFLAGS(VARIABLE, FLAGS...)
dnl   Appends to VARIABLE each of FLAGS that the linker accepts.
AC_DEFUN([SGL_APPEND_LDFLAGS], [
  for sgl_flag in $2; do
    SGL_CHECK_LDFLAG([$sgl_flag], [AS_VAR_APPEND([$1], [" $sgl_flag"])])
  done
])
