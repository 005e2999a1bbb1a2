#!/usr/bin/env bash
# Sets up what the tests need, builds FedKit and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift build --build-tests
swift test --skip-build "$@"
