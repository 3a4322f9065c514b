#!/bin/sh
# Build funcs_arm64.dll from funcs_arm64.s with clang-19 + lld-link-19 into the directory given as $1.
set -e
out="${1:?usage: build_arm64.sh OUTDIR}"
here="$(cd "$(dirname "$0")" && pwd)"
clang-19 --target=aarch64-pc-windows-msvc -c "$here/funcs_arm64.s" -o "$out/funcs_arm64.obj"
lld-link-19 /nologo /dll /noentry /machine:arm64 /out:"$out/funcs_arm64.dll" "$out/funcs_arm64.obj" \
  /export:g_chained /export:g_lr /export:g_fp /export:g_full /export:g_big /export:g_machframe
