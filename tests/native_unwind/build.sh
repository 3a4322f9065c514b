#!/bin/sh
# Build funcs.dll from funcs.s with clang-19 + lld-link-19 into the directory given as $1.
set -e
out="${1:?usage: build.sh OUTDIR}"
here="$(cd "$(dirname "$0")" && pwd)"
clang-19 --target=x86_64-pc-windows-msvc -c "$here/funcs.s" -o "$out/funcs.obj"
lld-link-19 /nologo /dll /noentry /machine:x64 /out:"$out/funcs.dll" "$out/funcs.obj" \
  /export:f_push /export:f_frame /export:f_large /export:f_huge /export:f_tail /export:f_chain \
  /export:f_machframe /export:f_machframe_code /export:Forwarded=ntdll.RtlUnwind /export:hidden=f_large,@40,NONAME
