#!/usr/bin/env bash
# The main job: check a model from models/ and run it on libtorch, which is installed on first
# use. Usage: scripts/main-job.sh [MODEL.net] [nnc options such as --set size=96]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model=${1:-models/resnet18.net}
shift $(($# > 0 ? 1 : 0))
scripts/setup-libtorch.sh
cargo build --release --quiet -p nnc-cli -p nnc-torch
target/release/nnc check "$model" --depth 1 "$@"
echo
target/release/nnc run "$model" "$@"
