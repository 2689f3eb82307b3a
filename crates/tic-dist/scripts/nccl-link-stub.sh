#!/usr/bin/env bash
# Link-time stand-in for libnccl (soname libnccl.so.2), for building `--features nccl` on a
# machine without NCCL. cudarc (dynamic-linking, as Candle sets it) passes `-lnccl`; the real
# library is loaded at run time from the GPU machine's PyTorch wheels
# (site-packages/nvidia/nccl/lib/libnccl.so.2, NCCL 2.28.9 with torch 2.11 cu130).
# Usage: bash crates/tic-dist/scripts/nccl-link-stub.sh .cuda-tk   (after setup-cuda-tk.sh and `cargo fetch`)
# Writes DEST/nvidia/cu13/lib/stubs/libnccl.so, a folder cudarc's build script already searches
# (via CUDA_HOME from cuda-env.sh).
set -euo pipefail
DEST="${1:?usage: nccl-link-stub.sh DEST (the toolkit folder given to setup-cuda-tk.sh)}"
STUBS="$DEST/nvidia/cu13/lib/stubs"
[ -d "$STUBS" ] || { echo "$STUBS not found: run setup-cuda-tk.sh $DEST first" >&2; exit 1; }
SYS=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/nccl/sys/mod.rs | sort -V | tail -1)
[ -f "$SYS" ] || { echo "cudarc sources not found: run cargo fetch in the project first" >&2; exit 1; }
grep -ohE '^pub unsafe fn nccl[A-Za-z0-9_]+' "$SYS" | awk '{print $4}' | sort -u \
  | awk '{print "void " $1 "(void) {}"}' > "$STUBS/libnccl_stub.c"
gcc -shared -fPIC -O0 -Wl,-soname,libnccl.so.2 -o "$STUBS/libnccl.so" "$STUBS/libnccl_stub.c"
echo "NCCL link stub: $STUBS/libnccl.so ($(wc -l < "$STUBS/libnccl_stub.c") symbols)"
