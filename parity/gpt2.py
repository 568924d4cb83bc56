"""The GPT-2-small-shaped decoder's reference (`models/zoo/gpt2.net`), as a PyTorch user writes
it with torch.nn's blocks: token embeddings plus a learned position embedding, dropout, `layers`
pre-norm causal transformer layers (torch.nn's TransformerEncoderLayer with `norm_first`, a GELU
MLP four times as wide, and a causal mask), a final layer norm, and an output projection whose
weight is the token embedding's, tied as `self.lm_head.weight = self.wte.weight` ties it. At
the default sizes it has GPT-2 small's 124,439,808 parameters. Its state_dict names (wpe,
wte.weight, h.0.self_attn.in_proj_weight, ..., ln_f.weight, lm_head.weight) are nnc's.

Every sequence is `context` tokens long, as nnc's position embedding is a `param` of one row
per position."""

import torch
from torch import nn


class GPT2(nn.Module):
    def __init__(self, vocab=50_257, context=1024, width=768, layers=12, heads=12, dropout=0.1):
        super().__init__()
        self.wpe = nn.Parameter(torch.empty(context, width).normal_(std=0.02))
        self.wte = nn.Embedding(vocab, width)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, tokens):
        length = tokens.shape[1]
        x = self.drop(self.wte(tokens) + self.wpe[:length])
        mask = nn.Transformer.generate_square_subsequent_mask(length, dtype=x.dtype)
        for layer in self.h:
            x = layer(x, src_mask=mask, is_causal=True)
        return self.lm_head(self.ln_f(x))
