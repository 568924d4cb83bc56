#!/usr/bin/env bash
# The main job: check a model from models/ and train it on the real Fashion-MNIST, as d2l's
# train_ch6 does (LeNet, the default, takes about half a minute on two CPU cores). libtorch
# and the data are installed on first use.
# Usage: scripts/main-job.sh [MODEL.net] [nnc train options, e.g. --lr 0.9 --epochs 10]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model=${1:-models/lenet.net}
shift $(($# > 0 ? 1 : 0))
scripts/setup-libtorch.sh
scripts/setup-data.sh
cargo build --release --quiet -p nnc-cli -p nnc-torch
target/release/nnc check "$model" --depth 1
echo
name=$(basename "$model" .net)
out="runs/$name-$(date +%Y%m%d-%H%M%S)"
target/release/nnc train "$model" --out "$out" "$@"
target/release/nnc eval "$model" --weights "$out/checkpoint.safetensors"
