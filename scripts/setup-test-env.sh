#!/usr/bin/env bash
# Install bugcheck with its test extras, plus the Debian tools the tests use as oracles and
# to build PE+PDB pairs (llvm-pdbutil/llvm-readobj, clang-19, lld-19, gcab). Idempotent: skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e '.[test]'
need=()
command -v llvm-pdbutil >/dev/null || need+=(llvm)
command -v clang-19 >/dev/null || need+=(clang-19)
command -v lld-link-19 >/dev/null || command -v lld-link >/dev/null || need+=(lld-19)
command -v gcab >/dev/null || need+=(gcab)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 \
        || echo "warning: could not install ${need[*]}; tests needing them will skip"
fi
