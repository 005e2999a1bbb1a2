#!/usr/bin/env bash
# Sets up FedKit and runs its main job on the built-in benchmark: FedAvg vs FedBN vs
# FedWon on the five-domain digits5 benchmark, each a real federation of processes
# over mutual TLS on this machine; then, without extra arguments, the same benchmark at
# batch 4, where FedWon (which has no batch statistics) learns much faster.
# Extra arguments go to the first `fed-sim compare` (and skip the second).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build
.build/debug/fed-sim compare --preset digits5-quick --strategies fedavg,fedbn,fedwon --out fed-sim-out "$@"
if [ $# -eq 0 ]; then
    echo
    echo "The same benchmark at batch 4 (docs/sweep.md, \"Small batches\"):"
    .build/debug/fed-sim compare --preset digits5-quick --strategies fedavg,fedbn,fedwon --batch 4 --out fed-sim-out/batch-4
fi
