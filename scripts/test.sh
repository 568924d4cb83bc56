#!/usr/bin/env bash
# The tests: installs libtorch and Fashion-MNIST on first use (the runtime's tests run on
# them), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup-libtorch.sh
scripts/setup-data.sh
cargo test --workspace
# The models and the standard library stay in `nnc fmt`'s layout.
cargo run --quiet -p nnc-cli -- fmt --check models compiler/std
