#!/usr/bin/env bash
# Sets up FedKit and runs its main job on the built-in benchmark: FedAvg vs FedBN vs
# FedWon on the five-domain digits5 benchmark, each a real federation of processes
# over mutual TLS on this machine. Extra arguments go to `fed-sim compare`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build
.build/debug/fed-sim compare --preset digits5-quick --strategies fedavg,fedbn,fedwon --out fed-sim-out "$@"
