"""Writes nnc's per-op PyTorch parity fixtures: run by hand where PyTorch is installed.

    python parity/make_op_fixtures.py      # writes parity/fixtures/ops/<case>.safetensors

The environment these were made in (PyTorch 2.13.0, CPU; the wheel is PyPI's CUDA build,
which needs its nvidia-* dependencies installed to import at all, even on a machine with
no GPU; about 4.7 GB in all):

    python3 -m venv .venv
    .venv/bin/pip install torch==2.13.0 safetensors numpy
    .venv/bin/python parity/make_op_fixtures.py

(`pip install --no-deps <torch wheel>` alone does not work: `import torch` then fails on
libcudart.so.13, and libtorch_cuda.so, which libtorch_python.so links, needs cuDNN, cuBLAS,
NCCL and the rest.)

For each case of CASES, builds the real torch.nn module from the constructor text `torch`,
overwrites its floating-point parameters and buffers with seeded random values (running_var
uniform in [0.5, 1.5], num_batches_tracked 3), and records in one safetensors file:

    input          float32, [2, *dims], seeded standard normal (times INPUT_SCALE's factor
                   for the cases it names); for the cases of INT_INPUTS, int64 ids, seeded
                   uniform in [0, n), the module's padding_idx (if any) among them
    input.<name>   for the cases of EXTRA_INPUTS, each further input, in order: float32,
                   seeded standard normal (an attention's memory), or a bool key padding
                   mask [2, S], true at the last i + 1 keys of example i
    output         module.eval()(input, *further inputs)
    output_train   a fresh copy of the module (same state) in train mode, applied to input
                   just after torch.manual_seed(DROPOUT_SEED), so that a dropout's mask is
                   the one nnc draws after seeding libtorch alike (a dropout's mask depends on
                   its input's memory layout too: `chain_attention_dropout` holds it)
    state.<key>    every state_dict entry before either call (num_batches_tracked stays int64)
    train_state.<key>
                   every state_dict entry after the train-mode call, only for modules whose
                   state that call changes (batchnorm: running stats, num_batches_tracked)
    __metadata__   layer (nnc's layer name), call (nnc's call text), input (nnc's input
                   dims without the batch), torch (the constructor text), torch_version,
                   import (the std module the call needs) for the cases of IMPORTS,
                   input_dtype ("int") for the cases of INT_INPUTS, whose input nnc declares
                   `int` (the others have no such key, and are float), and inputs (JSON:
                   [[name, dims without the batch, "float" or "bool"], ...]) for the cases of
                   EXTRA_INPUTS, whose network declares its first input `x` and these after
                   it, and whose call names them

The files are written by this script's own safetensors writer (same layout as
safetensors' save_file, but with the metadata keys sorted, which save_file does not do), so a
rerun gives identical bytes. The script ends by loading every file back with safetensors,
rebuilding each module from its `torch` text, loading the state strictly and checking the
outputs.
"""

import copy
import json
import os
import struct
import sys
import zlib

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "ops")
BATCH = 2
NUM_BATCHES_TRACKED = 3

# (case, nnc layer, nnc call, input dims without the batch, torch constructor)
CASES = [
    ("conv2d_1", "conv2d", "conv2d(8, 3, padding=1)", [3, 6, 6], "nn.Conv2d(3, 8, 3, padding=1)"),
    (
        "conv2d_2",
        "conv2d",
        "conv2d(4, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2))",
        [3, 7, 8],
        "nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2))",
    ),
    (
        "conv2d_3",
        "conv2d",
        "conv2d(6, 3, stride=2, padding=1, groups=2, bias=false)",
        [4, 9, 9],
        "nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=False)",
    ),
    # "same" with an even kernel: d·(k − 1) = 3 rows and columns of padding, the odd one at the
    # bottom and right.
    ("conv2d_same_even", "conv2d", 'conv2d(4, 4, padding="same")', [3, 6, 7], "nn.Conv2d(3, 4, 4, padding='same')"),
    # "same" with dilation: 2·(3 − 1) = 4 rows, 3·(2 − 1) = 3 columns.
    (
        "conv2d_same_dilated",
        "conv2d",
        'conv2d(4, (3, 2), dilation=(2, 3), padding="same")',
        [2, 7, 8],
        "nn.Conv2d(2, 4, (3, 2), dilation=(2, 3), padding='same')",
    ),
    ("conv2d_valid", "conv2d", 'conv2d(5, 3, padding="valid")', [3, 6, 6], "nn.Conv2d(3, 5, 3, padding='valid')"),
    ("maxpool_1", "maxpool2d", "maxpool2d(3, stride=2, padding=1)", [2, 7, 7], "nn.MaxPool2d(3, stride=2, padding=1)"),
    # Effective kernel 3, stride 2: 9 rows give 4 either way; 8 columns give 3, or 4 with ceil_mode.
    (
        "maxpool_2",
        "maxpool2d",
        "maxpool2d(2, dilation=2, ceil_mode=true)",
        [2, 9, 8],
        "nn.MaxPool2d(2, dilation=2, ceil_mode=True)",
    ),
    # ceil_mode's second rule: ceil((5 + 2 - 2) / 3) + 1 = 3 windows, but the last would start
    # in the right padding (6 >= 5 + 1), so PyTorch drops it: 2 x 2.
    (
        "maxpool_3",
        "maxpool2d",
        "maxpool2d(2, stride=3, padding=1, ceil_mode=true)",
        [2, 5, 5],
        "nn.MaxPool2d(2, stride=3, padding=1, ceil_mode=True)",
    ),
    (
        "avgpool_1",
        "avgpool2d",
        "avgpool2d(3, stride=2, padding=1, count_include_pad=false)",
        [2, 7, 7],
        "nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)",
    ),
    ("avgpool_2", "avgpool2d", "avgpool2d(2, ceil_mode=true)", [2, 5, 7], "nn.AvgPool2d(2, ceil_mode=True)"),
    # ceil_mode with count_include_pad: the last window (rows 5..8 of the input, padding 1)
    # runs past the padding; PyTorch divides by the part inside input + padding, 2 (per axis).
    (
        "avgpool_3",
        "avgpool2d",
        "avgpool2d(3, stride=2, padding=1, ceil_mode=true)",
        [2, 6, 6],
        "nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True)",
    ),
    ("adaptive_avgpool_1", "adaptive_avgpool2d", "adaptive_avgpool2d(1)", [3, 5, 5], "nn.AdaptiveAvgPool2d(1)"),
    (
        "adaptive_avgpool_2",
        "adaptive_avgpool2d",
        "adaptive_avgpool2d((2, 3))",
        [2, 7, 5],
        "nn.AdaptiveAvgPool2d((2, 3))",
    ),
    # 1-D and 3-D convolutions and pooling, and transposed convolutions: strides, dilations,
    # groups, output_padding (below the stride, or below the dilation alone in _3), odd sizes,
    # ceil_mode.
    ("conv1d_1", "conv1d", "conv1d(4, 3, padding=1)", [3, 10], "nn.Conv1d(3, 4, 3, padding=1)"),
    (
        "conv1d_2",
        "conv1d",
        "conv1d(6, 5, stride=2, padding=2, dilation=2, groups=2, bias=false)",
        [4, 13],
        "nn.Conv1d(4, 6, 5, stride=2, padding=2, dilation=2, groups=2, bias=False)",
    ),
    (
        "conv1d_same_even",
        "conv1d",
        'conv1d(4, 4, padding="same", dilation=3)',
        [2, 9],
        "nn.Conv1d(2, 4, 4, padding='same', dilation=3)",
    ),
    ("conv1d_valid", "conv1d", 'conv1d(3, (2,), padding="valid")', [2, 5], "nn.Conv1d(2, 3, (2,), padding='valid')"),
    ("conv3d_1", "conv3d", "conv3d(4, 3, padding=1)", [2, 5, 6, 4], "nn.Conv3d(2, 4, 3, padding=1)"),
    (
        "conv3d_2",
        "conv3d",
        "conv3d(4, (3, 1, 2), stride=(2, 1, 1), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2)",
        [2, 7, 5, 6],
        "nn.Conv3d(2, 4, (3, 1, 2), stride=(2, 1, 1), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2)",
    ),
    (
        "conv3d_same",
        "conv3d",
        'conv3d(3, (2, 3, 4), padding="same", bias=false)',
        [2, 5, 5, 6],
        "nn.Conv3d(2, 3, (2, 3, 4), padding='same', bias=False)",
    ),
    (
        "conv_transpose1d_1",
        "conv_transpose1d",
        "conv_transpose1d(4, 3, stride=2, padding=1, output_padding=1)",
        [3, 7],
        "nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1)",
    ),
    (
        "conv_transpose1d_2",
        "conv_transpose1d",
        "conv_transpose1d(6, 4, stride=3, padding=2, output_padding=2, groups=2, bias=false, dilation=2)",
        [4, 5],
        "nn.ConvTranspose1d(4, 6, 4, stride=3, padding=2, output_padding=2, groups=2, bias=False, dilation=2)",
    ),
    (
        "conv_transpose2d_1",
        "conv_transpose2d",
        "conv_transpose2d(4, 2, stride=2)",
        [3, 5, 6],
        "nn.ConvTranspose2d(3, 4, 2, stride=2)",
    ),
    (
        "conv_transpose2d_2",
        "conv_transpose2d",
        "conv_transpose2d(4, (3, 5), stride=(2, 3), padding=(1, 2), output_padding=(1, 0), dilation=(1, 2))",
        [2, 4, 5],
        "nn.ConvTranspose2d(2, 4, (3, 5), stride=(2, 3), padding=(1, 2), output_padding=(1, 0), dilation=(1, 2))",
    ),
    (
        "conv_transpose2d_3",
        "conv_transpose2d",
        "conv_transpose2d(6, 3, output_padding=1, groups=3, dilation=2)",
        [3, 4, 4],
        "nn.ConvTranspose2d(3, 6, 3, output_padding=1, groups=3, dilation=2)",
    ),
    (
        "conv_transpose3d_1",
        "conv_transpose3d",
        "conv_transpose3d(3, 3, stride=2, padding=1, output_padding=1)",
        [2, 3, 4, 3],
        "nn.ConvTranspose3d(2, 3, 3, stride=2, padding=1, output_padding=1)",
    ),
    (
        "conv_transpose3d_2",
        "conv_transpose3d",
        "conv_transpose3d(4, (2, 3, 1), stride=(1, 2, 2), padding=(0, 1, 0), output_padding=(0, 1, 1), groups=2, bias=false)",
        [2, 3, 3, 4],
        "nn.ConvTranspose3d(2, 4, (2, 3, 1), stride=(1, 2, 2), padding=(0, 1, 0), output_padding=(0, 1, 1), groups=2, bias=False)",
    ),
    ("maxpool1d_1", "maxpool1d", "maxpool1d(3, stride=2, padding=1)", [3, 9], "nn.MaxPool1d(3, stride=2, padding=1)"),
    (
        "maxpool1d_2",
        "maxpool1d",
        "maxpool1d(2, dilation=2, ceil_mode=true)",
        [2, 8],
        "nn.MaxPool1d(2, dilation=2, ceil_mode=True)",
    ),
    (
        "maxpool1d_3",
        "maxpool1d",
        "maxpool1d(2, stride=3, padding=1, ceil_mode=true)",
        [2, 5],
        "nn.MaxPool1d(2, stride=3, padding=1, ceil_mode=True)",
    ),
    (
        "maxpool3d_1",
        "maxpool3d",
        "maxpool3d(3, stride=2, padding=1)",
        [2, 5, 6, 7],
        "nn.MaxPool3d(3, stride=2, padding=1)",
    ),
    (
        "maxpool3d_2",
        "maxpool3d",
        "maxpool3d((2, 3, 2), stride=(1, 2, 2), dilation=(2, 1, 1), ceil_mode=true)",
        [2, 5, 7, 6],
        "nn.MaxPool3d((2, 3, 2), stride=(1, 2, 2), dilation=(2, 1, 1), ceil_mode=True)",
    ),
    (
        "avgpool1d_1",
        "avgpool1d",
        "avgpool1d(3, stride=2, padding=1, count_include_pad=false)",
        [3, 9],
        "nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False)",
    ),
    (
        "avgpool1d_2",
        "avgpool1d",
        "avgpool1d(3, stride=2, padding=1, ceil_mode=true)",
        [2, 6],
        "nn.AvgPool1d(3, stride=2, padding=1, ceil_mode=True)",
    ),
    ("avgpool3d_1", "avgpool3d", "avgpool3d(2, ceil_mode=true)", [2, 5, 4, 7], "nn.AvgPool3d(2, ceil_mode=True)"),
    (
        "avgpool3d_2",
        "avgpool3d",
        "avgpool3d((3, 3, 1), stride=2, padding=(1, 1, 0), count_include_pad=false)",
        [2, 5, 6, 3],
        "nn.AvgPool3d((3, 3, 1), stride=2, padding=(1, 1, 0), count_include_pad=False)",
    ),
    ("adaptive_avgpool1d_1", "adaptive_avgpool1d", "adaptive_avgpool1d(3)", [3, 7], "nn.AdaptiveAvgPool1d(3)"),
    ("adaptive_avgpool3d_1", "adaptive_avgpool3d", "adaptive_avgpool3d(1)", [3, 4, 5, 3], "nn.AdaptiveAvgPool3d(1)"),
    (
        "adaptive_avgpool3d_2",
        "adaptive_avgpool3d",
        "adaptive_avgpool3d((1, 2, 3))",
        [2, 5, 5, 7],
        "nn.AdaptiveAvgPool3d((1, 2, 3))",
    ),
    ("adaptive_maxpool1d_1", "adaptive_maxpool1d", "adaptive_maxpool1d(4)", [3, 10], "nn.AdaptiveMaxPool1d(4)"),
    ("adaptive_maxpool2d_1", "adaptive_maxpool2d", "adaptive_maxpool2d(1)", [3, 5, 5], "nn.AdaptiveMaxPool2d(1)"),
    (
        "adaptive_maxpool2d_2",
        "adaptive_maxpool2d",
        "adaptive_maxpool2d((2, 3))",
        [2, 7, 5],
        "nn.AdaptiveMaxPool2d((2, 3))",
    ),
    (
        "adaptive_maxpool3d_1",
        "adaptive_maxpool3d",
        "adaptive_maxpool3d((2, 1, 3))",
        [2, 4, 5, 7],
        "nn.AdaptiveMaxPool3d((2, 1, 3))",
    ),
    ("batchnorm_1", "batchnorm", "batchnorm", [3, 4, 4], "nn.BatchNorm2d(3)"),
    (
        "batchnorm_2",
        "batchnorm",
        "batchnorm(eps=1e-3, momentum=0.2)",
        [5],
        "nn.BatchNorm1d(5, eps=1e-3, momentum=0.2)",
    ),
    ("batchnorm_3", "batchnorm", "batchnorm", [4, 6], "nn.BatchNorm1d(4)"),
    ("relu_1", "relu", "relu", [3, 4, 4], "nn.ReLU()"),
    ("sigmoid_1", "sigmoid", "sigmoid", [2, 3, 4], "nn.Sigmoid()"),
    ("tanh_1", "tanh", "tanh", [12], "nn.Tanh()"),
    ("gelu_1", "gelu", "gelu", [3, 4, 4], "nn.GELU()"),
    ("gelu_2", "gelu", 'gelu(approximate="tanh")', [3, 4, 4], "nn.GELU(approximate='tanh')"),
    ("relu6_1", "relu6", "relu6", [3, 4, 4], "nn.ReLU6()"),
    ("silu_1", "silu", "silu", [3, 4, 4], "nn.SiLU()"),
    ("hardswish_1", "hardswish", "hardswish", [3, 4, 4], "nn.Hardswish()"),
    ("hardsigmoid_1", "hardsigmoid", "hardsigmoid", [3, 4, 4], "nn.Hardsigmoid()"),
    ("mish_1", "mish", "mish", [3, 4, 4], "nn.Mish()"),
    ("hardtanh_1", "hardtanh", "hardtanh", [3, 4, 4], "nn.Hardtanh()"),
    ("hardtanh_2", "hardtanh", "hardtanh(-2.0, 3.0)", [12], "nn.Hardtanh(-2.0, 3.0)"),
    ("elu_1", "elu", "elu", [3, 4, 4], "nn.ELU()"),
    ("elu_2", "elu", "elu(alpha=0.5)", [12], "nn.ELU(alpha=0.5)"),
    ("softplus_1", "softplus", "softplus", [3, 4, 4], "nn.Softplus()"),
    ("softplus_2", "softplus", "softplus(2.0, threshold=1.0)", [12], "nn.Softplus(2.0, threshold=1.0)"),
    ("prelu_1", "prelu", "prelu", [3, 4, 4], "nn.PReLU()"),
    ("prelu_2", "prelu", "prelu(num_parameters=3, init=0.1)", [3, 4, 4], "nn.PReLU(num_parameters=3, init=0.1)"),
    ("prelu_3", "prelu", "prelu(4)", [4, 6], "nn.PReLU(4)"),
    ("identity_1", "identity", "identity", [7], "nn.Identity()"),
    # nn.Softmax's own default is dim=None (a legacy implicit choice); nnc's is -1.
    ("softmax_1", "softmax", "softmax", [5], "nn.Softmax(dim=-1)"),
    ("softmax_2", "softmax", "softmax(dim=1)", [3, 4, 4], "nn.Softmax(dim=1)"),
    ("log_softmax_1", "log_softmax", "log_softmax", [5], "nn.LogSoftmax(dim=-1)"),
    ("log_softmax_2", "log_softmax", "log_softmax(dim=1)", [3, 4, 4], "nn.LogSoftmax(dim=1)"),
    ("dropout_1", "dropout", "dropout(p=0.3)", [10], "nn.Dropout(p=0.3)"),
    # A dropout draws its mask in its input's memory order: after an attention, whose training
    # output PyTorch lays out [T, N, E] and returns transposed, nnc's must be laid out alike.
    # (A chain of two layers, named as nn.Sequential's: `chain` is no layer of nnc's.)
    (
        "chain_attention_dropout",
        "chain",
        "multi_head_attention(2) -> dropout(0.5)",
        [5, 8],
        "nn.Sequential(SelfAttention(8, 2, batch_first=True), nn.Dropout(0.5))",
    ),
    ("flatten_1", "flatten", "flatten", [3, 4, 4], "nn.Flatten()"),
    ("flatten_2", "flatten", "flatten(start=2)", [3, 4, 4], "nn.Flatten(start_dim=2)"),
    ("linear_1", "linear", "linear(5)", [12], "nn.Linear(12, 5)"),
    ("linear_2", "linear", "linear(5, bias=false)", [12], "nn.Linear(12, 5, bias=False)"),
    ("linear_3", "linear", "linear(3)", [4, 6], "nn.Linear(6, 3)"),
    ("leaky_relu_1", "leaky_relu", "leaky_relu", [3, 4, 4], "nn.LeakyReLU()"),
    ("leaky_relu_2", "leaky_relu", "leaky_relu(negative_slope=0.2)", [10], "nn.LeakyReLU(negative_slope=0.2)"),
    ("layernorm_1", "layernorm", "layernorm", [4, 6], "nn.LayerNorm(6)"),
    ("layernorm_2", "layernorm", "layernorm((3, 4), eps=1e-3)", [2, 3, 4], "nn.LayerNorm([3, 4], eps=1e-3)"),
    (
        "layernorm_3",
        "layernorm",
        "layernorm(elementwise_affine=false)",
        [5],
        "nn.LayerNorm(5, elementwise_affine=False)",
    ),
    # The language's arithmetic (`arith`: `+ - * /` between tensors, broadcast, and with
    # numbers), against the same Python expression on torch tensors, in the same order.
    ("arith_1", "arith", "_ * sigmoid", [3, 4, 4], "Lambda(lambda x: x * torch.sigmoid(x))"),
    (
        "arith_2",
        "arith",
        "_ * (adaptive_avgpool2d(1) -> sigmoid)",
        [3, 4, 4],
        "Lambda(lambda x: x * torch.sigmoid(nn.functional.adaptive_avg_pool2d(x, 1)))",
    ),
    (
        "arith_3",
        "arith",
        "(_ -> adaptive_avgpool2d((1, 4))) - (_ -> adaptive_avgpool2d((4, 1)))",
        [3, 4, 4],
        "Lambda(lambda x: nn.functional.adaptive_avg_pool2d(x, (1, 4)) - nn.functional.adaptive_avg_pool2d(x, (4, 1)))",
    ),
    ("arith_4", "arith", "1 - _ / 2 * 3 + 0.5", [6], "Lambda(lambda x: 1 - x / 2 * 3 + 0.5)"),
    ("arith_5", "arith", "2 / (_ * _ + 1) - 0.25 * _", [6], "Lambda(lambda x: 2 / (x * x + 1) - 0.25 * x)"),
    ("arith_6", "arith", "(_ -> tanh) / (_ -> sigmoid)", [2, 5], "Lambda(lambda x: torch.tanh(x) / torch.sigmoid(x))"),
    # The shape operations, against the tensor methods PyTorch code calls; nnc's dimensions
    # count the batch as 0, as PyTorch's do.
    ("reshape_1", "reshape", "reshape(4, -1)", [8, 3, 2], "Lambda(lambda x: x.reshape(x.shape[0], 4, -1))"),
    ("reshape_2", "reshape", "reshape((6, 2, 2))", [3, 8], "Lambda(lambda x: x.reshape(x.shape[0], 6, 2, 2))"),
    ("unflatten_1", "unflatten", "unflatten(1, (2, -1))", [8, 3], "nn.Unflatten(1, (2, -1))"),
    ("unflatten_2", "unflatten", "unflatten(-1, (3, 2))", [2, 6], "nn.Unflatten(-1, (3, 2))"),
    ("permute_1", "permute", "permute(0, 2, 3, 1)", [3, 4, 5], "Lambda(lambda x: x.permute(0, 2, 3, 1))"),
    ("transpose_1", "transpose", "transpose(1, -1)", [3, 4, 5], "Lambda(lambda x: x.transpose(1, -1))"),
    ("mean_1", "mean", "mean((2, 3))", [3, 4, 5], "Lambda(lambda x: x.mean(dim=(2, 3)))"),
    ("mean_2", "mean", "mean(-1, keepdim=true)", [3, 4], "Lambda(lambda x: x.mean(dim=-1, keepdim=True))"),
    ("sum_1", "sum", "sum((1, 3), keepdim=true)", [3, 4, 5], "Lambda(lambda x: x.sum(dim=(1, 3), keepdim=True))"),
    ("amax_1", "amax", "amax(2)", [3, 4, 5], "Lambda(lambda x: x.amax(dim=2))"),
    # Slicing and the pieces of chunk and split, which the language spells itself.
    ("slice_1", "slice", "_[:, 0]", [3, 4, 4], "Lambda(lambda x: x[:, 0])"),
    ("slice_2", "slice", "_[:, :, 1:, ::2]", [3, 4, 5], "Lambda(lambda x: x[:, :, 1:, ::2])"),
    ("slice_3", "slice", "_[..., -1] - _[..., 1:-1:2, 0]", [3, 4, 4], "Lambda(lambda x: x[..., -1] - x[..., 1:-1:2, 0])"),
    # 5 in 4 chunks is 2, 2, 1: three pieces, as torch.chunk gives.
    (
        "chunk_1",
        "chunk",
        "a, b, c = chunk(4, dim=-1)\n    cat(c, a, b, dim=-1)",
        [3, 5],
        "Lambda(lambda x: (lambda a, b, c: torch.cat([c, a, b], dim=-1))(*x.chunk(4, dim=-1)))",
    ),
    (
        "split_1",
        "split",
        "a, b = split((1, 3), dim=1)\n    b * a",
        [4, 3, 3],
        "Lambda(lambda x: (lambda a, b: b * a)(*x.split((1, 3), dim=1)))",
    ),
    (
        "split_2",
        "split",
        "a, b, c = split(2, dim=1)\n    cat(c, b, a)",
        [5, 4],
        "Lambda(lambda x: (lambda a, b, c: torch.cat([c, b, a], dim=1))(*x.split(2, dim=1)))",
    ),
    (
        "stack_1",
        "stack",
        "stack(_ -> relu, _ -> sigmoid, dim=-1)",
        [3, 4],
        "Lambda(lambda x: torch.stack([torch.relu(x), torch.sigmoid(x)], dim=-1))",
    ),
    # std.shufflenet's channel_shuffle, written with unflatten, transpose and flatten.
    ("channel_shuffle_1", "channel_shuffle", "channel_shuffle(3)", [6, 2, 3], "nn.ChannelShuffle(3)"),
    # Normalisation: group norm (one group is layer norm over the channels, as many as the
    # channels is instance norm), instance norm with and without affine and running
    # statistics (train mode updates them, and never num_batches_tracked), batch norm on rank 5.
    ("groupnorm_1", "groupnorm", "groupnorm(2)", [6, 4, 5], "nn.GroupNorm(2, 6)"),
    ("groupnorm_2", "groupnorm", "groupnorm(3, eps=1e-3, affine=false)", [6, 7], "nn.GroupNorm(3, 6, eps=1e-3, affine=False)"),
    ("groupnorm_3", "groupnorm", "groupnorm(4)", [8, 2, 3, 4], "nn.GroupNorm(4, 8)"),
    ("groupnorm_4", "groupnorm", "groupnorm(1)", [6], "nn.GroupNorm(1, 6)"),
    ("groupnorm_5", "groupnorm", "groupnorm(5)", [5, 3, 2], "nn.GroupNorm(5, 5)"),
    ("instancenorm_1", "instancenorm", "instancenorm", [3, 5, 6], "nn.InstanceNorm2d(3)"),
    ("instancenorm_2", "instancenorm", "instancenorm(affine=true)", [4, 9], "nn.InstanceNorm1d(4, affine=True)"),
    (
        "instancenorm_3",
        "instancenorm",
        "instancenorm(momentum=0.3, track_running_stats=true)",
        [3, 4, 5],
        "nn.InstanceNorm2d(3, momentum=0.3, track_running_stats=True)",
    ),
    (
        "instancenorm_4",
        "instancenorm",
        "instancenorm(eps=1e-3, affine=true, track_running_stats=true)",
        [2, 3, 4, 5],
        "nn.InstanceNorm3d(2, eps=1e-3, affine=True, track_running_stats=True)",
    ),
    ("batchnorm_4", "batchnorm", "batchnorm(momentum=0.3)", [3, 2, 4, 5], "nn.BatchNorm3d(3, momentum=0.3)"),
    # Resampling: by a scale (which PyTorch passes on to libtorch's kernels, which map
    # positions by its inverse) and to a size, each mode on its rank, align_corners both ways,
    # fractional scales, non-square inputs.
    ("upsample_1", "upsample", "upsample(scale_factor=2)", [3, 4, 5], "nn.Upsample(scale_factor=2)"),
    (
        "upsample_2",
        "upsample",
        'upsample(scale_factor=1.5, mode="bilinear")',
        [2, 4, 6],
        "nn.Upsample(scale_factor=1.5, mode='bilinear')",
    ),
    (
        "upsample_3",
        "upsample",
        'upsample(size=(5, 9), mode="bilinear", align_corners=true)',
        [2, 3, 4],
        "nn.Upsample(size=(5, 9), mode='bilinear', align_corners=True)",
    ),
    ("upsample_4", "upsample", 'upsample(size=7, mode="linear")', [3, 5], "nn.Upsample(size=7, mode='linear')"),
    (
        "upsample_5",
        "upsample",
        'upsample(scale_factor=2, mode="trilinear", align_corners=true)',
        [2, 2, 3, 4],
        "nn.Upsample(scale_factor=2, mode='trilinear', align_corners=True)",
    ),
    ("upsample_6", "upsample", 'upsample(scale_factor=3, mode="bicubic")', [2, 3, 4], "nn.Upsample(scale_factor=3, mode='bicubic')"),
    ("upsample_7", "upsample", "upsample(size=(3, 10))", [2, 5, 4], "nn.Upsample(size=(3, 10))"),
    ("upsample_8", "upsample", "upsample(scale_factor=1.5)", [2, 2, 4, 6], "nn.Upsample(scale_factor=1.5)"),
    (
        "upsample_9",
        "upsample",
        'upsample(scale_factor=2.5, mode="linear", align_corners=false)',
        [3, 4],
        "nn.Upsample(scale_factor=2.5, mode='linear', align_corners=False)",
    ),
    (
        "upsample_10",
        "upsample",
        'upsample(scale_factor=0.5, mode="bicubic", align_corners=true)',
        [2, 6, 8],
        "nn.Upsample(scale_factor=0.5, mode='bicubic', align_corners=True)",
    ),
    ("pixel_shuffle_1", "pixel_shuffle", "pixel_shuffle(2)", [8, 3, 5], "nn.PixelShuffle(2)"),
    ("pixel_shuffle_2", "pixel_shuffle", "pixel_shuffle(3)", [9, 2, 2], "nn.PixelShuffle(3)"),
    ("pixel_shuffle_3", "pixel_shuffle", "pixel_shuffle(2)", [2, 4, 3, 2], "nn.PixelShuffle(2)"),
    ("pixel_unshuffle_1", "pixel_unshuffle", "pixel_unshuffle(2)", [3, 4, 6], "nn.PixelUnshuffle(2)"),
    ("pixel_unshuffle_2", "pixel_unshuffle", "pixel_unshuffle(3)", [2, 6, 3], "nn.PixelUnshuffle(3)"),
    # torchvision's LayerNorm2d (ConvNeXt): a layer norm over the channels at each position.
    ("layernorm2d_1", "layernorm2d", "layernorm2d", [6, 3, 4], "torchvision.models.convnext.LayerNorm2d(6)"),
    (
        "layernorm2d_2",
        "layernorm2d",
        "layernorm2d(eps=1e-3, elementwise_affine=false)",
        [5, 2, 3],
        "torchvision.models.convnext.LayerNorm2d(5, eps=1e-3, elementwise_affine=False)",
    ),
    # Declared parameters (`param`), broadcast against the batched input as PyTorch does: a
    # layer scale [C, 1, 1], a position embedding whose leading 1 meets the batch, and
    # arithmetic between parameters before they meet the input.
    ("parameter_1", "parameter", "param scale [3, 1, 1] = 0.5\n    scale * _", [3, 4, 4], "WithParam('scale', (3, 1, 1), lambda x, p: p * x)"),
    ("parameter_2", "parameter", "param pos [1, 4, 5] = normal(std=0.02)\n    _ + pos", [4, 5], "WithParam('pos', (1, 4, 5), lambda x, p: x + p)"),
    # Self-attention: nn.MultiheadAttention(batch_first=True) called with the sequence as query,
    # key and value (SelfAttention below), with and without biases.
    ("multi_head_attention_1", "multi_head_attention", "multi_head_attention(2)", [5, 8], "SelfAttention(8, 2, batch_first=True)"),
    (
        "multi_head_attention_2",
        "multi_head_attention",
        "multi_head_attention(4, bias=false)",
        [3, 8],
        "SelfAttention(8, 4, bias=False, batch_first=True)",
    ),
    (
        "multi_head_attention_3",
        "multi_head_attention",
        "multi_head_attention(2, is_causal=true)",
        [6, 4],
        "SelfAttention(4, 2, batch_first=True, causal=True)",
    ),
    # Cross-attention (the key and value a memory of other positions) and key padding masks
    # (true: the key is left out, PyTorch's meaning), alone, together and with causal
    # self-attention; the further inputs are EXTRA_INPUTS'.
    (
        "multi_head_attention_cross",
        "multi_head_attention",
        "x -> multi_head_attention(2, memory=memory)",
        [5, 8],
        "Attention(8, 2, batch_first=True, memory=True)",
    ),
    (
        "multi_head_attention_cross_masked",
        "multi_head_attention",
        "x -> multi_head_attention(4, bias=false, memory=memory, key_padding_mask=mask)",
        [3, 8],
        "Attention(8, 4, bias=False, batch_first=True, memory=True, padding=True)",
    ),
    (
        "multi_head_attention_padding",
        "multi_head_attention",
        "x -> multi_head_attention(2, key_padding_mask=mask)",
        [5, 8],
        "Attention(8, 2, batch_first=True, padding=True)",
    ),
    (
        "multi_head_attention_padding_causal",
        "multi_head_attention",
        "x -> multi_head_attention(2, is_causal=true, key_padding_mask=mask)",
        [6, 4],
        "Attention(4, 2, batch_first=True, padding=True, causal=True)",
    ),
    # std.transformer's transformer_encoder_layer against torch.nn's TransformerEncoderLayer:
    # post-norm with ReLU, pre-norm with GELU, and causal.
    (
        "transformer_encoder_layer_1",
        "transformer_encoder_layer",
        "transformer_encoder_layer(2, dim_feedforward=16, dropout=0.0)",
        [5, 8],
        "EncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)",
    ),
    (
        "transformer_encoder_layer_2",
        "transformer_encoder_layer",
        'transformer_encoder_layer(4, dim_feedforward=12, dropout=0.0, activation="gelu", layer_norm_eps=1e-6, norm_first=true)',
        [3, 8],
        "EncoderLayer(8, 4, dim_feedforward=12, dropout=0.0, activation='gelu', layer_norm_eps=1e-6, norm_first=True, batch_first=True)",
    ),
    (
        "transformer_encoder_layer_3",
        "transformer_encoder_layer",
        "transformer_encoder_layer(2, dim_feedforward=8, dropout=0.0, norm_first=true, is_causal=true)",
        [6, 4],
        "EncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, norm_first=True, batch_first=True, causal=True)",
    ),
    # std.transformer's transformer_decoder_layer against torch.nn's TransformerDecoderLayer,
    # with a memory: post-norm with ReLU, pre-norm with GELU, causal self-attention and the
    # memory's padding masked, post-norm causal with the target's padding masked.
    (
        "transformer_decoder_layer_1",
        "transformer_decoder_layer",
        "x -> transformer_decoder_layer(memory, 2, dim_feedforward=16, dropout=0.0)",
        [5, 8],
        "DecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)",
    ),
    (
        "transformer_decoder_layer_2",
        "transformer_decoder_layer",
        'x -> transformer_decoder_layer(memory, 4, dim_feedforward=12, dropout=0.0, activation="gelu", '
        "layer_norm_eps=1e-6, norm_first=true, tgt_is_causal=true, memory_key_padding_mask=mask)",
        [6, 8],
        "DecoderLayer(8, 4, dim_feedforward=12, dropout=0.0, activation='gelu', layer_norm_eps=1e-6, "
        "norm_first=True, batch_first=True, causal=True, memory_padding=True)",
    ),
    (
        "transformer_decoder_layer_3",
        "transformer_decoder_layer",
        "x -> transformer_decoder_layer(memory, 2, dim_feedforward=8, dropout=0.0, tgt_is_causal=true, "
        "tgt_key_padding_mask=mask)",
        [6, 4],
        "DecoderLayer(4, 2, dim_feedforward=8, dropout=0.0, batch_first=True, causal=True, tgt_padding=True)",
    ),
    # Contractions: matmul between tensors and with a weight matrix, and functional attention.
    ("matmul_1", "matmul", "matmul(_, _ -> transpose(1, 2))", [4, 3], "Lambda(lambda x: torch.matmul(x, x.transpose(1, 2)))"),
    ("matmul_2", "matmul", "param w [3, 5] = 0\n    matmul(_, w)", [2, 4, 3], "WithParam('w', (3, 5), lambda x, p: torch.matmul(x, p))"),
    (
        "einsum_1",
        "einsum",
        'einsum("nij,njk->nik", _, _ -> transpose(1, 2))',
        [4, 3],
        "Lambda(lambda x: torch.einsum('nij,njk->nik', x, x.transpose(1, 2)))",
    ),
    (
        "einsum_2",
        "einsum",
        'param w [3, 5] = 0\n    einsum("ntd,de->nte", _, w)',
        [4, 3],
        "WithParam('w', (3, 5), lambda x, p: torch.einsum('ntd,de->nte', x, p))",
    ),
    # A subscript of size 1 in one operand broadcasts against the other's, as torch.einsum's
    # does: `a` is 1 in the parameter and 2 in the input, `c` 1 in the input and 3 in the
    # parameter.
    (
        "einsum_broadcast",
        "einsum",
        'param w [1, 3, 4, 5] = 0\n    einsum("nacd,acde->nace", _, w)',
        [2, 1, 4],
        "WithParam('w', (1, 3, 4, 5), lambda x, p: torch.einsum('nacd,acde->nace', x, p))",
    ),
    (
        "attention_1",
        "scaled_dot_product_attention",
        "scaled_dot_product_attention(_, _, _)",
        [2, 5, 4],
        "Lambda(lambda x: nn.functional.scaled_dot_product_attention(x, x, x))",
    ),
    (
        "attention_2",
        "scaled_dot_product_attention",
        "scaled_dot_product_attention(_ * 2, _, _ + 1, is_causal=true, scale=0.3)",
        [2, 5, 4],
        "Lambda(lambda x: nn.functional.scaled_dot_product_attention(x * 2, x, x + 1, is_causal=True, scale=0.3))",
    ),
    ("parameter_3", "parameter", "param w [5] = 0\n    _ * (1 + w * w)", [3, 5], "WithParam('w', (5,), lambda x, p: x * (1 + p * p))"),
    # The recurrent layers, batch first, on [N, T, F]: one layer and stacks, each direction,
    # with and without bias, RNN's two nonlinearities. The modules' output sequence alone
    # (`LSTMOutput` and the rest, below), as `-> lstm(...) ->` gives it.
    ("lstm_1", "lstm", "lstm(6)", [5, 4], "LSTMOutput(4, 6, batch_first=True)"),
    (
        "lstm_2",
        "lstm",
        "lstm(5, num_layers=2, bidirectional=true)",
        [4, 3],
        "LSTMOutput(3, 5, num_layers=2, batch_first=True, bidirectional=True)",
    ),
    # Dropout between the layers: random in training (so no train-mode output), none in eval.
    (
        "lstm_dropout",
        "lstm",
        "lstm(4, num_layers=3, dropout=0.5)",
        [5, 3],
        "LSTMOutput(3, 4, num_layers=3, batch_first=True, dropout=0.5)",
    ),
    (
        "gru_1",
        "gru",
        "gru(5, num_layers=2, bias=false)",
        [6, 4],
        "GRUOutput(4, 5, num_layers=2, bias=False, batch_first=True)",
    ),
    ("gru_2", "gru", "gru(4, bidirectional=true)", [5, 3], "GRUOutput(3, 4, batch_first=True, bidirectional=True)"),
    ("rnn_1", "rnn", 'rnn(6, nonlinearity="relu")', [5, 4], "RNNOutput(4, 6, nonlinearity='relu', batch_first=True)"),
    (
        "rnn_2",
        "rnn",
        "rnn(5, num_layers=2, bidirectional=true)",
        [4, 3],
        "RNNOutput(3, 5, num_layers=2, batch_first=True, bidirectional=True)",
    ),
    # The recurrent layers' states, batch first in nnc ([N, D·num_layers, H]): initial states
    # cut from the input, and the final states bound by a destructuring, each flattened beside
    # the output (States below, whose module is registered under nnc's name for the layer).
    (
        "lstm_states",
        "lstm_states",
        "h = in[:, 0:4]\n    c = in[:, 2:6] * 0.5\n    y, h_n, c_n = in -> lstm(5, num_layers=2, bidirectional=true, h0=h, c0=c)\n    cat(y -> flatten, h_n -> flatten, c_n -> flatten, dim=1)",
        [6, 5],
        "States('y_h_n_c_n', nn.LSTM(5, 5, num_layers=2, batch_first=True, bidirectional=True), lambda x: (x[:, 0:4], x[:, 2:6] * 0.5))",
    ),
    (
        "gru_states",
        "gru_states",
        "h = in[:, 1:3] - 1\n    y, h_n = in -> gru(4, num_layers=2, h0=h)\n    cat(y -> flatten, h_n -> flatten, dim=1)",
        [5, 4],
        "States('y_h_n', nn.GRU(4, 4, num_layers=2, batch_first=True), lambda x: x[:, 1:3] - 1)",
    ),
    (
        "rnn_states",
        "rnn_states",
        'y, h_n = rnn(3, nonlinearity="relu", bidirectional=true)\n    cat(y -> flatten, h_n -> flatten, dim=1)',
        [4, 6],
        "States('y_h_n', nn.RNN(6, 3, nonlinearity='relu', batch_first=True, bidirectional=True))",
    ),
    # The lookup of int ids (an input declared `int`): without a padding row, with one counted
    # from the end (-2 is row 5 of 7), and row 0, on inputs of one and two dimensions.
    ("embedding_1", "embedding", "embedding(10, 4)", [6], "nn.Embedding(10, 4)"),
    ("embedding_2", "embedding", "embedding(7, 5, padding_idx=-2)", [3, 4], "nn.Embedding(7, 5, padding_idx=-2)"),
    ("embedding_3", "embedding", "embedding(12, 3, padding_idx=0)", [5], "nn.Embedding(12, 3, padding_idx=0)"),
]

# The standard library module a case's call needs imported.
IMPORTS = {
    "channel_shuffle_1": "std.shufflenet",
    "transformer_encoder_layer_1": "std.transformer",
    "transformer_encoder_layer_2": "std.transformer",
    "transformer_encoder_layer_3": "std.transformer",
    "transformer_decoder_layer_1": "std.transformer",
    "transformer_decoder_layer_2": "std.transformer",
    "transformer_decoder_layer_3": "std.transformer",
}

# Cases of several inputs: the further ones, after the first (`x`), each (name, dims without
# the batch, "float" or "padding": a bool key padding mask, true at the last i + 1 keys of
# example i, so that some keys are left out and never all of a row's).
EXTRA_INPUTS = {
    "multi_head_attention_cross": [("memory", [7, 8], "float")],
    "multi_head_attention_cross_masked": [("memory", [6, 8], "float"), ("mask", [6], "padding")],
    "multi_head_attention_padding": [("mask", [5], "padding")],
    "multi_head_attention_padding_causal": [("mask", [6], "padding")],
    "transformer_decoder_layer_1": [("memory", [7, 8], "float")],
    "transformer_decoder_layer_2": [("memory", [5, 8], "float"), ("mask", [5], "padding")],
    "transformer_decoder_layer_3": [("memory", [3, 4], "float"), ("mask", [6], "padding")],
}

# Cases whose input is int64 ids in [0, n), declared `int` in nnc.
INT_INPUTS = {"embedding_1": 10, "embedding_2": 7, "embedding_3": 12}


class Lambda(nn.Module):
    """A module that computes an expression of its input, for the language's arithmetic."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)

# The seed of libtorch's generator before each train-mode call (parity/make_fixtures.py's,
# and nnc_runtime::parity::DROPOUT_SEED).
DROPOUT_SEED = 123

# Cases whose module changes its formula outside a standard normal's usual range (relu6 at 6,
# hardswish and hardsigmoid at ±3, softplus at beta · x > 20): their input is scaled by this,
# so that every branch is taken.
INPUT_SCALE = {"relu6_1": 4.0, "hardswish_1": 2.0, "hardsigmoid_1": 2.0, "softplus_1": 12.0}


class LSTMOutput(nn.LSTM):
    """nn.LSTM's output sequence alone, as nnc's `lstm` gives it: nn.LSTM returns it with the
    final states. The state_dict is nn.LSTM's own."""

    def forward(self, x):
        return super().forward(x)[0]


class GRUOutput(nn.GRU):
    """nn.GRU's output sequence alone, as nnc's `gru` gives it."""

    def forward(self, x):
        return super().forward(x)[0]


class RNNOutput(nn.RNN):
    """nn.RNN's output sequence alone, as nnc's `rnn` gives it."""

    def forward(self, x):
        return super().forward(x)[0]


class States(nn.Module):
    """A recurrent module, registered as `name` (nnc's name for the layer), on a sequence and
    the initial states `initial` computes from it (batch first, as nnc takes them; none: zero),
    giving its output and its final states (made batch first) each flattened, side by side."""

    def __init__(self, name, module, initial=None):
        super().__init__()
        self.add_module(name, module)
        self.name, self.initial = name, initial

    def forward(self, x):
        module = getattr(self, self.name)
        if self.initial is None:
            y, states = module(x)
        else:
            given = self.initial(x)
            batch_second = lambda h: h.transpose(0, 1).contiguous()
            hx = tuple(map(batch_second, given)) if isinstance(given, tuple) else batch_second(given)
            y, states = module(x, hx)
        states = states if isinstance(states, tuple) else (states,)
        return torch.cat([y.flatten(1)] + [h.transpose(0, 1).flatten(1) for h in states], dim=1)


class WithParam(nn.Module):
    """A module with one parameter, `name`, of `shape`, that computes `f(input, parameter)`,
    for the language's `param`."""

    def __init__(self, name, shape, f):
        super().__init__()
        self.register_parameter(name, nn.Parameter(torch.zeros(shape)))
        self.name, self.f = name, f

    def forward(self, x):
        return self.f(x, getattr(self, self.name))


def causal_mask(x):
    return nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention as self-attention, giving the attended sequence alone, for nnc's
    `multi_head_attention`; its state_dict is the module's own. `causal` masks the positions
    after each."""

    def __init__(self, *args, causal=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.causal = causal

    def forward(self, x):
        mask = causal_mask(x) if self.causal else None
        return super().forward(x, x, x, need_weights=False, attn_mask=mask, is_causal=self.causal)[0]


def causal_bool_mask(x):
    """The causal mask as bools, true above the diagonal, beside a bool key padding mask (as
    PyTorch wants the two masks of one type)."""
    return torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).triu(1)


class Attention(nn.MultiheadAttention):
    """nn.MultiheadAttention giving the attended sequence alone, for nnc's
    `multi_head_attention` of several inputs: the query, then the memory (the key and value)
    where `memory`, then the bool key padding mask where `padding`; causal where `causal`."""

    def __init__(self, *args, memory=False, padding=False, causal=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.memory, self.padding, self.causal = memory, padding, causal

    def forward(self, x, *extras):
        extras = list(extras)
        kv = extras.pop(0) if self.memory else x
        padding = extras.pop(0) if self.padding else None
        mask = None
        if self.causal:
            mask = causal_bool_mask(x) if self.padding else causal_mask(x)
        return super().forward(
            x, kv, kv, key_padding_mask=padding, need_weights=False, attn_mask=mask, is_causal=self.causal
        )[0]


class DecoderLayer(nn.TransformerDecoderLayer):
    """nn.TransformerDecoderLayer on (x, memory, masks...), for std.transformer's block: causal
    self-attention when `causal`, then the target's key padding mask where `tgt_padding`, the
    memory's where `memory_padding`."""

    def __init__(self, *args, causal=False, tgt_padding=False, memory_padding=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.causal, self.tgt_padding, self.memory_padding = causal, tgt_padding, memory_padding

    def forward(self, x, memory, *masks):
        masks = list(masks)
        tgt_padding = masks.pop(0) if self.tgt_padding else None
        memory_padding = masks.pop(0) if self.memory_padding else None
        mask = None
        if self.causal:
            mask = causal_bool_mask(x) if self.tgt_padding else causal_mask(x)
        return super().forward(
            x,
            memory,
            tgt_mask=mask,
            tgt_key_padding_mask=tgt_padding,
            memory_key_padding_mask=memory_padding,
            tgt_is_causal=self.causal,
        )


class EncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer, causal when `causal`, for std.transformer's block."""

    def __init__(self, *args, causal=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.causal = causal

    def forward(self, x):
        mask = causal_mask(x) if self.causal else None
        return super().forward(x, src_mask=mask, is_causal=self.causal)


def build(text):
    """The module a constructor text such as `nn.Conv2d(4, 6, 3)` makes."""
    import torchvision  # for its LayerNorm2d, which torch.nn lacks

    env = {
        "nn": nn,
        "torch": torch,
        "torchvision": torchvision,
        "Lambda": Lambda,
        "WithParam": WithParam,
        "SelfAttention": SelfAttention,
        "EncoderLayer": EncoderLayer,
        "Attention": Attention,
        "DecoderLayer": DecoderLayer,
        "LSTMOutput": LSTMOutput,
        "GRUOutput": GRUOutput,
        "RNNOutput": RNNOutput,
        "States": States,
    }
    return eval(text, env)  # noqa: S307 (our own table)


def seed_of(case):
    return zlib.crc32(case.encode())


def randomise(module, gen):
    """Overwrites every floating-point parameter and buffer with seeded random values."""
    with torch.no_grad():
        for key, tensor in module.state_dict(keep_vars=True).items():
            if key.endswith("num_batches_tracked"):
                tensor.fill_(NUM_BATCHES_TRACKED)
            elif key.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen))
            else:
                raise ValueError(f"unexpected state entry {key} of dtype {tensor.dtype}")


def state_of(module):
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def make(case, layer, call, dims, text):
    seed = seed_of(case)
    torch.manual_seed(seed)
    module = build(text)
    gen = torch.Generator().manual_seed(seed)
    randomise(module, gen)
    if case in INT_INPUTS:
        x = torch.randint(0, INT_INPUTS[case], [BATCH, *dims], generator=gen)
        if module.padding_idx is not None:
            x.view(-1)[0] = module.padding_idx  # the padding row is looked up too
    else:
        x = torch.randn([BATCH, *dims], generator=gen) * INPUT_SCALE.get(case, 1.0)
    extras = [further_input(kind, dims, gen) for _, dims, kind in EXTRA_INPUTS.get(case, [])]
    state = state_of(module)
    trained = copy.deepcopy(module)
    with torch.no_grad():
        y = module.eval()(x, *extras)
    tensors = {"input": x, "output": y.contiguous()}
    for (name, _, _), extra in zip(EXTRA_INPUTS.get(case, []), extras):
        tensors[f"input.{name}"] = extra
    torch.manual_seed(DROPOUT_SEED)
    with torch.no_grad():
        y_train = trained.train()(x, *extras)
    tensors["output_train"] = y_train.contiguous()
    after = state_of(trained)
    if any(not torch.equal(after[k], state[k]) for k in state):
        tensors.update({f"train_state.{k}": v for k, v in after.items()})
    tensors.update({f"state.{k}": v for k, v in state.items()})
    metadata = {
        "layer": layer,
        "call": call,
        "input": json.dumps(dims),
        "torch": text,
        "torch_version": torch.__version__,
    }
    if case in IMPORTS:
        metadata["import"] = IMPORTS[case]
    if case in INT_INPUTS:
        metadata["input_dtype"] = "int"
    if case in EXTRA_INPUTS:
        inputs = [[name, dims, "float" if kind == "float" else "bool"] for name, dims, kind in EXTRA_INPUTS[case]]
        metadata["inputs"] = json.dumps(inputs)
    return tensors, metadata


def further_input(kind, dims, gen):
    """A further input of EXTRA_INPUTS: seeded normal floats, or a key padding mask true at
    the last i + 1 keys of example i."""
    if kind == "float":
        return torch.randn([BATCH, *dims], generator=gen)
    assert kind == "padding" and len(dims) == 1 and dims[0] > BATCH, kind
    mask = torch.zeros([BATCH, *dims], dtype=torch.bool)
    for i in range(BATCH):
        mask[i, dims[0] - i - 1 :] = True
    return mask


DTYPES = {torch.float32: ("F32", 4), torch.int64: ("I64", 8), torch.bool: ("BOOL", 1)}


def save(tensors, metadata, path):
    """safetensors' layout, deterministically: data sorted by alignment then name, as
    save_file does, and the header's keys (metadata included) sorted."""
    order = sorted(tensors, key=lambda k: (-DTYPES[tensors[k].dtype][1], k))
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for key in order:
        t = tensors[key]
        name, _ = DTYPES[t.dtype]
        data = t.contiguous().numpy().tobytes()  # little-endian: checked in main
        header[key] = {"dtype": name, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def check(path):
    """Loads one file with safetensors, rebuilds its module and checks the outputs exactly."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        # Cloned: safetensors' tensors sit at unaligned addresses in the file's buffer, and
        # PyTorch's CPU linear (MKL) rounds differently on them (by up to 5e-7 here).
        tensors = {k: f.get_tensor(k).clone() for k in f.keys()}
    module = build(meta["torch"])
    state = {k[len("state.") :]: v for k, v in tensors.items() if k.startswith("state.")}
    module.load_state_dict(state, strict=True)
    x = tensors["input"]
    assert list(x.shape) == [BATCH, *json.loads(meta["input"])], path
    input_dtype = torch.int64 if meta.get("input_dtype") == "int" else torch.float32
    assert x.dtype == input_dtype and tensors["output"].dtype == torch.float32, path
    extras = []
    for name, dims, dtype in json.loads(meta.get("inputs", "[]")):
        extra = tensors[f"input.{name}"]
        assert list(extra.shape) == [BATCH, *dims], (path, name)
        assert extra.dtype == (torch.bool if dtype == "bool" else torch.float32), (path, name)
        extras.append(extra)
    fresh = copy.deepcopy(module)
    with torch.no_grad():
        assert torch.equal(module.eval()(x, *extras), tensors["output"]), path
    torch.manual_seed(DROPOUT_SEED)
    with torch.no_grad():
        assert torch.equal(fresh.train()(x, *extras), tensors["output_train"]), path
    after = state_of(fresh)
    for k, v in after.items():
        expected = tensors.get(f"train_state.{k}", tensors[f"state.{k}"])
        assert v.dtype == expected.dtype and torch.equal(v, expected), (path, k)
    nbt = [v for k, v in state.items() if k.endswith("num_batches_tracked")]
    assert all(v.dtype == torch.int64 and v.item() == NUM_BATCHES_TRACKED for v in nbt), path


def main():
    assert sys.byteorder == "little", "safetensors stores little-endian data"
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    names = [c[0] for c in CASES]
    assert len(set(names)) == len(names), "case names must be unique"
    total = 0
    for case, layer, call, dims, text in CASES:
        tensors, metadata = make(case, layer, call, dims, text)
        path = os.path.join(OUT, f"{case}.safetensors")
        save(tensors, metadata, path)
        size = os.path.getsize(path)
        total += size
        shape = list(tensors["output"].shape[1:])
        extra = " +train_state" if any(k.startswith("train_state.") for k in tensors) else ""
        print(f"{case:20} {call:62} {json.dumps(dims):>10} -> {json.dumps(shape):12} {size:6} B{extra}")
    stale = sorted(set(f for f in os.listdir(OUT) if f.endswith(".safetensors")) - {f"{n}.safetensors" for n in names})
    if stale:
        print(f"warning: files of no case in {OUT}: {', '.join(stale)}", file=sys.stderr)
    for case in names:
        check(os.path.join(OUT, f"{case}.safetensors"))
    print(f"{len(CASES)} cases, {total} bytes, all checked (torch {torch.__version__})")


if __name__ == "__main__":
    main()
