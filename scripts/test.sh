#!/usr/bin/env bash
# The tests: installs libtorch on first use (the runtime's tests run on it), then runs every
# test of the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup-libtorch.sh
cargo test --workspace
