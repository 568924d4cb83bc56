"""nnc's totals for the zoo against torchinfo's, at full size: run by hand where torchvision and
torchinfo are installed.

    python parity/torchinfo_zoo.py [NAME ...]      # every network of parity/zoo.py's ZOO

Prints, for each network of `models/zoo/`, nnc's parameter and multiply-add totals
(`nnc check --format json`) beside torchinfo's (`summary(model, mode="eval")`) at 224×224
(299×299 for Inception-v3). The parameters must agree; the multiply-adds agree except where
nnc counts what torchinfo leaves out, which the README describes: a linear layer's other
positions (ConvNeXt) and an auxiliary classifier, which evaluation mode does not run
(Inception-v3). Exits 1 if a parameter count differs.
"""

import json
import os
import subprocess
import sys

import torchinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo import NNC, ROOT, ZOO, build  # noqa: E402  (this folder's module)


def main():
    names = sys.argv[1:] or list(ZOO)
    failed = 0
    for name in names:
        constructor, _ = ZOO[name]
        size = 299 if name == "inception_v3" else 224
        model = build(constructor).eval()
        theirs = torchinfo.summary(model, input_size=(1, 3, size, size), verbose=0, mode="eval")
        path = os.path.join(ROOT, "models", "zoo", f"{name}.net")
        text = subprocess.run([NNC, "check", "--format", "json", path, "--set", f"size={size}"], check=True, capture_output=True).stdout
        ours = json.loads(text)[0]["networks"][0]["totals"]
        same = ours["params"] == theirs.total_params
        failed += not same
        print(
            f"{'ok  ' if same else 'FAIL'} {name:20} params {ours['params']:>11,} (torchinfo {theirs.total_params:>11,})  "
            f"mult-adds {ours['macs']:>15,} (torchinfo {theirs.total_mult_adds:>15,}, ratio {ours['macs'] / theirs.total_mult_adds:.4f})"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
