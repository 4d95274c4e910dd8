#!/usr/bin/env bash
# Merges the reports of slurm-array.sbatch's tasks (run it after the array, e.g. with
# `sbatch --dependency=afterany:JOBID`).
set -euo pipefail
tensile report merge reports/shard-*.json --report-json reports/merged.json --junit reports/junit.xml --html reports/report.html
