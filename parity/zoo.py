"""The torchvision zoo against nnc, at full size: run by hand where torchvision is installed.

    python parity/zoo.py [NAME ...]      # every network of ZOO by default

For each network of `models/zoo/`, against torchvision's own module (random weights, as no
download is possible here; torchvision's initialisation):

1. `nnc check --format json` gives torchvision's parameter count;
2. the module `nnc emit --target pytorch` writes has torchvision's state_dict, key for key and
   shape for shape, loads torchvision's weights strictly, and computes torchvision's outputs;
3. torchvision's state_dict, saved as safetensors, loads strictly into nnc's own runtime
   (`nnc run --weights`), and nnc computes torchvision's outputs: this writes the input,
   the weights and torchvision's output to a folder and runs the `zoo_full_size` test of
   `runtime/tests/zoo.rs` on it (`NNC_ZOO_DIR`).

Prints one line per network with the largest relative differences; exits 1 if any check fails.
Needs torch, torchvision and safetensors, and nnc built (`cargo build -p nnc-cli`).

    python parity/zoo.py --write-fixtures [NAME ...]

writes instead the small fixtures CI checks without Python (`parity/fixtures/zoo/`, read by
`runtime/tests/zoo.rs`): each network with 10 classes on one 64×64 synthetic picture, with
synthetic weights (`parity/synthetic.py`), so that a fixture holds the state_dict's names and
shapes and the output, not the weights.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from copy import deepcopy

import torch
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synthetic  # noqa: E402  (this folder's module)
import gpt2  # noqa: E402  (this folder's module)
import text_classifier  # noqa: E402  (this folder's module)
import unet  # noqa: E402  (this folder's module)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NNC = os.environ.get("NNC", os.path.join(ROOT, "target", "debug", "nnc"))

# name: (torchvision constructor, input size used for the full-size output comparison)
ZOO = {
    "mobilenet_v2": ("torchvision.models.mobilenet_v2", 96),
    "mobilenet_v3_small": ("torchvision.models.mobilenet_v3_small", 96),
    "efficientnet_b0": ("torchvision.models.efficientnet_b0", 96),
    "shufflenet_v2_x1_0": ("torchvision.models.shufflenet_v2_x1_0", 96),
    "regnet_y_400mf": ("torchvision.models.regnet_y_400mf", 96),
    "convnext_tiny": ("torchvision.models.convnext_tiny", 96),
    "resnet50": ("torchvision.models.resnet50", 96),
    "resnext50_32x4d": ("torchvision.models.resnext50_32x4d", 96),
    "densenet121": ("torchvision.models.densenet121", 96),
    # Its auxiliary classifier needs a 17×17 grid at Mixed_6e: 299×299 at least.
    "inception_v3": ("torchvision.models.inception_v3", 299),
    "vit_b_16": ("torchvision.models.vit_b_16", 224),
    # Not torchvision's: an embedding, a bidirectional LSTM and a linear layer, written out in
    # parity/text_classifier.py; its size is the sequence's length.
    "text_classifier": ("text_classifier.TextClassifier", 64),
    # Not torchvision's: a GPT-2-small-shaped decoder of torch.nn's transformer layers, with
    # tied embeddings, written out in parity/gpt2.py; its size is the context.
    "gpt2": ("gpt2.GPT2", 1024),
    # Not torchvision's: the widely used PyTorch U-Net, written out in parity/unet.py.
    "unet": ("unet.UNet", 96),
}
FIXTURES = os.path.join(ROOT, "parity", "fixtures", "zoo")
FIXTURE_CLASSES = 10
# A segmentation network's output has a score per pixel: two classes keep its fixture small.
FIXTURE_CLASSES_OF = {"unet": 2, "gpt2": None}  # None: a network with no classes
FIXTURE_INPUT = [1, 3, 64, 64]
# Inception-v3's smallest size; two examples, for batch norm in training mode (its auxiliary
# classifier's output is compared in training mode too, where batch norm needs two values).
FIXTURE_INPUT_OF = {"inception_v3": [2, 3, 299, 299]}
# ViT fixes its image size at construction (the position embedding's length).
FIXTURE_KWARGS_OF = {"vit_b_16": {"image_size": 64}}
# Networks of token ids: the vocabulary their input's ids are drawn from, and their fixture's
# smaller sizes. Their size is the sequence's length (`--set length=`), and a fixture stores
# its input, as ids are no synthetic floats.
TEXT = {
    "text_classifier": {"vocab": 10_000, "fixture": {"vocab": 50, "embed": 8, "hidden": 6}},
    "gpt2": {"vocab": 50_257, "fixture": {"vocab": 50, "context": 12, "width": 16, "layers": 2, "heads": 2}},
}
TEXT_FIXTURE_LENGTH = 12


def train_aux(reference, x):
    """The auxiliary classifier's output in training mode, for networks that have one
    (torchvision's InceptionOutputs), else None. The main output is left out: dropout makes it
    random in training mode, while the auxiliary branch has none. A copy runs it, as training
    mode updates batch norm's running statistics."""
    copy = deepcopy(reference).train()
    with torch.no_grad():
        out = copy(x)
    return out.aux_logits.contiguous() if isinstance(out, tuple) else None


def build(constructor, **kwargs):
    env = {"torchvision": torchvision, "unet": unet, "text_classifier": text_classifier, "gpt2": gpt2}
    return eval(constructor, env)(**kwargs)  # noqa: S307 (our own table)


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()


def emitted(path, name, work):
    """The module nnc emits for `path`, instantiated."""
    source = os.path.join(work, f"{name}.py")
    text = subprocess.run([NNC, "emit", "--target", "pytorch", path], check=True, capture_output=True).stdout
    with open(source, "wb") as f:
        f.write(text)
    spec = importlib.util.spec_from_file_location(name, source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, torch.nn.Module)]
    return classes[-1]()  # the network's class comes last, after its blocks'


def check(name, work):
    path = os.path.join(ROOT, "models", "zoo", f"{name}.net")
    if not os.path.exists(path):
        return f"{name}: no models/zoo/{name}.net", False
    constructor, size = ZOO[name]
    torch.manual_seed(0)
    reference = build(constructor).eval()
    # Parameters initialised to zero (ViT's head, biases) would make outputs trivially equal:
    # they take small random values instead, so that every weight matters.
    with torch.no_grad():
        for p in reference.parameters():
            if not p.any():
                p.normal_(std=0.02)
    expected_count = sum(p.numel() for p in reference.parameters())

    report = json.loads(subprocess.run([NNC, "check", "--format", "json", path], check=True, capture_output=True).stdout)
    count = report[0]["networks"][0]["totals"]["params"]
    ok = count == expected_count

    ours = emitted(path, name, work).eval()
    theirs = [(k, tuple(v.shape)) for k, v in reference.state_dict().items()]
    mine = [(k, tuple(v.shape)) for k, v in ours.state_dict().items()]
    names_ok = sorted(theirs) == sorted(mine)
    ok &= names_ok
    diff_emit = diff_nnc = float("nan")
    if names_ok:
        ours.load_state_dict(reference.state_dict(), strict=True)
        generator = torch.Generator().manual_seed(1)
        if name in TEXT:
            x = torch.randint(0, TEXT[name]["vocab"], (2, size), generator=generator)
        else:
            x = torch.randn(2, 3, size, size, generator=generator)
        with torch.no_grad():
            y = reference(x)
            diff_emit = relative(ours(x), y)
        aux = train_aux(reference, x)
        if aux is not None:
            ours.train()
            with torch.no_grad():
                outs = ours(x)
            ours.eval()
            diff_emit = max(diff_emit, relative(outs[1], aux))
        ok &= diff_emit <= 1e-5
        case = os.path.join(work, name)
        os.makedirs(case, exist_ok=True)
        # Cloned: safetensors refuses tensors that share memory (tied weights).
        save_file({k: v.contiguous().clone() for k, v in reference.state_dict().items()}, os.path.join(case, "weights.safetensors"))
        io = {"input": x, "output": y.contiguous()}
        if aux is not None:
            io["aux_train"] = aux
        save_file(io, os.path.join(case, "io.safetensors"))
        with open(os.path.join(case, "net"), "w") as f:
            f.write(path)
        with open(os.path.join(case, "set.json"), "w") as f:
            json.dump({"length" if name in TEXT else "size": str(size)}, f)
        test = subprocess.run(
            ["cargo", "test", "-q", "-p", "nnc-runtime", "--test", "zoo", "zoo_full_size", "--", "--nocapture"],
            cwd=ROOT,
            env={**os.environ, "NNC_ZOO_DIR": case},
            capture_output=True,
            text=True,
        )
        lines = [l for l in test.stdout.splitlines() + test.stderr.splitlines() if "relative difference" in l]
        if test.returncode == 0 and lines:
            diff_nnc = float(lines[-1].rsplit(" ", 1)[-1])
        else:
            ok = False
            print(test.stdout[-2000:], test.stderr[-2000:])
    missing = sorted(set(theirs) - set(mine))[:3]
    extra = sorted(set(mine) - set(theirs))[:3]
    line = (
        f"{name:20} params {count} (reference {expected_count}); state_dict {'equal' if names_ok else f'differs: missing {missing}, extra {extra}'}; "
        f"emitted module off by {diff_emit:.3g}; nnc runtime off by {diff_nnc:.3g}"
    )
    return line, ok


def tied(state):
    """The names of the state_dict that are another's tensor (tied weights), each with the
    first name of that tensor."""
    first = {}
    for k, v in state.items():
        first.setdefault(v.data_ptr(), k)
    return {k: first[v.data_ptr()] for k, v in state.items() if first[v.data_ptr()] != k}


def write_fixture(name):
    """The small fixture of one network: its state_dict's names and shapes, and its output on
    the synthetic input with the synthetic weights, both of which Rust recomputes. A tied
    tensor takes its first name's synthetic values under every name."""
    constructor, _ = ZOO[name]
    classes = FIXTURE_CLASSES_OF.get(name, FIXTURE_CLASSES)
    kwargs = TEXT[name]["fixture"] if name in TEXT else FIXTURE_KWARGS_OF.get(name, {})
    if classes is not None:
        kwargs = {"num_classes": classes, **kwargs}
    reference = build(constructor, **kwargs).eval()
    state = reference.state_dict()
    ties = tied(state)
    values = {k: torch.from_numpy(synthetic.tensor(ties.get(k, k), tuple(v.shape))) for k, v in state.items()}
    reference.load_state_dict(values, strict=True)
    if name in TEXT:
        length = kwargs.get("context", TEXT_FIXTURE_LENGTH)
        shape = [2, length]
        x = torch.randint(0, kwargs["vocab"], shape, generator=torch.Generator().manual_seed(0))
        given = {k: str(v) for k, v in kwargs.items() if k not in ("num_classes", "context")}
        settings = {"length": str(length), **given}
        if classes is not None:
            settings["classes"] = str(classes)
    else:
        shape = FIXTURE_INPUT_OF.get(name, FIXTURE_INPUT)
        x = torch.from_numpy(synthetic.tensor("input", tuple(shape)))
        settings = {"classes": str(classes), "size": str(shape[-1])}
    with torch.no_grad():
        y = reference(x).contiguous()
    aux = train_aux(reference, x)
    metadata = {
        "net": f"models/zoo/{name}.net",
        "set": json.dumps(settings),
        "input": json.dumps(shape),
        "state": json.dumps([[k, list(v.shape)] for k, v in state.items()], separators=(",", ":")),
        "tied": json.dumps(ties, separators=(",", ":")),
        "torch": f"{constructor}({', '.join(f'{k}={v}' for k, v in kwargs.items())})",
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
    }
    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, f"{name}.safetensors")
    tensors = {"output": y} if aux is None else {"output": y, "aux_train": aux}
    if name in TEXT:
        tensors["input"] = x
    save_file(tensors, path, metadata=metadata)
    print(f"{name:20} {list(y.shape)} {os.path.getsize(path)} bytes")


def main():
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(ZOO)
    if "--write-fixtures" in sys.argv:
        torch.use_deterministic_algorithms(True)
        for name in names:
            write_fixture(name)
        return
    failed = 0
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            line, ok = check(name, work)
            print(("ok   " if ok else "FAIL ") + line, flush=True)
            failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
