#!/usr/bin/env bash
# Sets up FedKit and runs its main job on the built-in benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift build --product fed-bench
.build/debug/fed-bench train --model digit-cnn --norm none --batch 32 --seconds 5
.build/debug/fed-bench train --model digit-cnn --norm batch --batch 32 --seconds 5
