#!/usr/bin/env bash
# nnc against PyTorch eager, side by side in one run, on the same machine and threads:
# LeNet at batch 256 on 28×28 and ResNet-18 at batch 32 on 96×96, examples/s and their ratio.
#
# Needs the release nnc with the runtime (built here) and a Python with PyTorch: set PYTHON to
# it (default: python3). Where PyTorch is missing, only nnc's figures are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-python3}
scripts/setup-libtorch.sh
cargo build --quiet --release -p nnc-cli -p nnc-torch
have_torch=1
"$PYTHON" -c "import torch" 2>/dev/null || { have_torch=0; echo "PyTorch is not importable with $PYTHON: nnc's figures only"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

row() { # name, file, model, size, batch, runs, extra nnc arguments...
  local name=$1 file=$2 model=$3 size=$4 batch=$5 runs=$6
  shift 6
  local out
  out=$(target/release/nnc bench "$file" "$@" --batch "$batch" --threads "$THREADS" --runs "$runs")
  local nf nt
  nf=$(awk '/^forward/ {print $3}' <<<"$out")
  nt=$(awk '/^training step/ {print $3}' <<<"$out")
  if ((have_torch)); then
    local ref pf pt
    ref=$("$PYTHON" bench/pytorch_eager.py --model "$model" --size "$size" --batch "$batch" --threads "$THREADS" --runs "$runs" 2>/dev/null)
    pf=$(awk '/^forward/ {print $2}' <<<"$ref")
    pt=$(awk '/^train/ {print $2}' <<<"$ref")
    printf '%-28s %-8s %12s %12s %7s\n' "$name" forward "$nf" "$pf" "$(ratio "$nf" "$pf")"
    printf '%-28s %-8s %12s %12s %7s\n' "" train "$nt" "$pt" "$(ratio "$nt" "$pt")"
  else
    printf '%-28s %-8s %12s\n' "$name" forward "$nf"
    printf '%-28s %-8s %12s\n' "" train "$nt"
  fi
}

printf '%-28s %-8s %12s %12s %7s\n' "examples/s, $THREADS threads" step nnc "PyTorch" ratio

# A whole training epoch of LeNet on the real Fashion-MNIST, data batching included, as
# `nnc train` reports it and as the same loop in PyTorch measures it.
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
if [[ -f "$DATA/train-images-idx3-ubyte.gz" ]]; then
  run=$(mktemp -d)
  ne=$(target/release/nnc train models/lenet.net --epochs 1 --threads "$THREADS" --data "$DATA" --out "$run/lenet" | awk '/^epoch 1\/1/ {print $(NF-1)}')
  rm -rf "$run"
  if ((have_torch)); then
    pe=$("$PYTHON" bench/pytorch_eager.py --model lenet --batch 256 --threads "$THREADS" --data "$DATA" 2>/dev/null | awk '/^epoch/ {print $2}')
    printf '%-28s %-8s %12s %12s %7s\n' "LeNet epoch, Fashion-MNIST" epoch "$ne" "$pe" "$(ratio "$ne" "$pe")"
  else
    printf '%-28s %-8s %12s\n' "LeNet epoch, Fashion-MNIST" epoch "$ne"
  fi
fi
row "LeNet, batch 256, 28×28" models/lenet.net lenet 28 256 20
row "ResNet-18, batch 32, 96×96" models/resnet18.net resnet18 96 32 5 --set size=96
