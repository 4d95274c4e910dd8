#!/usr/bin/env bash
# Builds the CUDA `tensile` binary here (no GPU needed) and stages what a device run needs in
# .gpu/ (ignored by git, carried to the device with carry [".gpu"]):
#   .gpu/tensile              the release binary with the `cuda` feature
#   .gpu/torch_hf_modules.py  the PyTorch anchor script, to time PyTorch in the same session
#   .gpu/device-run.sh        what to run on the device
# The first build takes about 20 minutes (candle's CUDA kernels); later ones are incremental.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck disable=SC1091
source ../shared/gpu/cuda-env.sh
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda} cargo build --release --locked --features cuda -p tensile-cli
mkdir -p .gpu
cp "${CARGO_TARGET_DIR:-target-cuda}/release/tensile" .gpu/
cp ../shared/anchors/torch_hf_modules.py .gpu/
cp tools/gpu/device-run.sh .gpu/
echo "staged .gpu/: run \`bash .gpu/device-run.sh\` on the device with carry [\".gpu\"]"
