#!/usr/bin/env bash
# Installs the real Fashion-MNIST, nnc train's default data: Debian's dataset-fashion-mnist,
# whose four IDX files land in /usr/share/datasets/fashion-mnist/. Where apt cannot install
# (not root), the package is downloaded and unpacked into ${NNC_CACHE:-~/.cache/nnc}/fashion-mnist
# instead, where nnc looks too. Either way the decompressed files' SHA-256 are checked.
# Idempotent: does nothing when the checked files are there.
set -euo pipefail

SYSTEM=/usr/share/datasets/fashion-mnist
CACHE="${NNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nnc}"
UNPACKED="$CACHE/fashion-mnist"
declare -A SHA256=(
  [train-images-idx3-ubyte.gz]=c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
  [train-labels-idx1-ubyte.gz]=bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
  [t10k-images-idx3-ubyte.gz]=5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
  [t10k-labels-idx1-ubyte.gz]=0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
)

say() { printf 'setup-data: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Whether a folder holds the four files with the right decompressed contents.
complete() {
  local dir=$1 name
  for name in "${!SHA256[@]}"; do
    [[ -f "$dir/$name" ]] || return 1
    [[ "$(gzip -dc "$dir/$name" | sha256sum | cut -d' ' -f1)" == "${SHA256[$name]}" ]] || { say "$dir/$name is corrupt"; return 1; }
  done
}

for dir in "$SYSTEM" "$UNPACKED/usr/share/datasets/fashion-mnist"; do
  if complete "$dir"; then
    say "Fashion-MNIST is installed in $dir"
    exit 0
  fi
done

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  say "installing Debian's dataset-fashion-mnist (31 MB)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null || die "apt-get could not install dataset-fashion-mnist"
  fi
  complete "$SYSTEM" || die "the installed files in $SYSTEM do not have the expected contents"
  say "installed Fashion-MNIST in $SYSTEM"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get is needed to fetch Debian's dataset-fashion-mnist; or pass nnc train --data DIR"
say "downloading Debian's dataset-fashion-mnist into $UNPACKED (no root: not installing system-wide)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download dataset-fashion-mnist >/dev/null) || die "apt-get download failed"
rm -rf "$UNPACKED.new" && mkdir -p "$UNPACKED.new"
dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$UNPACKED.new"
complete "$UNPACKED.new/usr/share/datasets/fashion-mnist" || die "the downloaded files do not have the expected contents"
rm -rf "$UNPACKED" && mv "$UNPACKED.new" "$UNPACKED"
say "unpacked Fashion-MNIST in $UNPACKED/usr/share/datasets/fashion-mnist"
