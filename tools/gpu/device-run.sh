#!/usr/bin/env bash
# Runs on the GPU machine (through the device tool, carry [".gpu"]), from the repository root.
# Everything lands in $OUT: PyTorch's anchor timings and tensile's, measured in one session on
# one machine so they can be compared as ratios, plus full runs with reports.
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
# 1. PyTorch's numbers for the same modules, on this machine, now.
python3 .gpu/torch_hf_modules.py "$OUT/torch.json" > "$OUT/torch.log" 2>&1
# 2. tensile's numbers for the anchor cases (llama2-7b has the anchor script's shapes), with
#    ratios to the PyTorch run above and roofline floors from ceilings measured here.
for dtype in bf16 f32; do
    .gpu/tensile bench --preset llama2-7b --device cuda --dtype "$dtype" --torch "$OUT/torch.json" \
        --results "$OUT/RESULTS.md" > "$OUT/bench-$dtype.log" 2>&1
done
# 3. Every check of the llama3-8b preset on the GPU (device parity against the CPU float64
#    twins, timing, pool-peak memory, scaling), with every report format.
.gpu/tensile run --model llama3-8b --device cuda --dtype bf16 --no-progress \
    --report-json "$OUT/llama3-8b-bf16.json" --html "$OUT/llama3-8b-bf16.html" \
    --junit "$OUT/llama3-8b-bf16.xml" --markdown "$OUT/llama3-8b-bf16.md" > "$OUT/llama3-8b-bf16.log" 2>&1
echo "exit codes and outputs are in $OUT"
