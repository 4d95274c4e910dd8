#!/usr/bin/env bash
# Puts NCCL (PyPI's nvidia-nccl-cu13) where the linker and the loader find it, for a build with
# `--features nccl` on a machine without a system NCCL. Source it after ../shared/gpu/cuda-env.sh:
#
#   source ../shared/gpu/cuda-env.sh && source tools/gpu/nccl-env.sh
#   CARGO_TARGET_DIR=target-cuda cargo build --release -p tensile-cli --features nccl
#
# The binary then needs libnccl.so.2 at run time too: LD_LIBRARY_PATH below, or the
# machine's own NCCL. Idempotent; the first run downloads about 200 MB.
set -u
NCCL_CACHE=${TENSILE_NCCL_CACHE:-$HOME/.cache/nccl-wheel}
if [ ! -e "$NCCL_CACHE/nvidia/nccl/lib/libnccl.so.2" ]; then
  echo "nccl-env: installing nvidia-nccl-cu13 into $NCCL_CACHE" >&2
  python3 -m pip install -q --no-deps --target "$NCCL_CACHE" nvidia-nccl-cu13 >&2 || return 1 2>/dev/null || exit 1
fi
mkdir -p "$NCCL_CACHE/link"
ln -sf "$NCCL_CACHE/nvidia/nccl/lib/libnccl.so.2" "$NCCL_CACHE/link/libnccl.so"
export LIBRARY_PATH=$NCCL_CACHE/link${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$NCCL_CACHE/nvidia/nccl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "nccl-env: libnccl.so.2 from $NCCL_CACHE" >&2
