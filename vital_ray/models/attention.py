"""Qwen2.5-VL loading with a batched vision attention.

transformers' ViT attention for sdpa/eager loops over the `cu_seqlens` chunks in Python: one attention call per
112-px window per 2 frames per layer. A long-video batch has tens of thousands of windows, so the ViT spent its
time launching tiny kernels (the learner's MFU on an H200 was 2.4%). `windowed_attention` groups the chunks by
length and runs one SDPA call per distinct length (a handful per layer), with the same math: exact up to
float rounding, on CPU and GPU, with autograd.

Its registered name contains "flash" only because that is how transformers decides to hand the attention
function the `cu_seqlens` instead of splitting itself (`is_flash_attention_requested`). The decoder keeps sdpa.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

VISION_ATTENTION = "vital_flash_windows"


class _Plan:
    """How to batch one `cu_seqlens`: per distinct chunk length, the token indices of its chunks; and the
    inverse permutation back to token order. Computed once per tensor: a ViT forward passes the same two
    `cu_seqlens` tensors (windows, whole frames) to all its layers, so one host sync each, not one per layer."""

    def __init__(self, cu: torch.Tensor):
        bounds = cu.tolist()
        by_len: dict[int, list[int]] = defaultdict(list)
        for start, end in zip(bounds[:-1], bounds[1:]):
            if end > start:
                by_len[end - start].append(start)
        self.n = bounds[-1] - bounds[0]
        self.groups = [(length, len(starts), (torch.tensor(starts, device=cu.device)[:, None]
                                              + torch.arange(length, device=cu.device)).reshape(-1))
                       for length, starts in by_len.items()]
        self.inverse = torch.argsort(torch.cat([idx for _, _, idx in self.groups]))


_PLANS: list[tuple[torch.Tensor, _Plan]] = []  # the last few (tensor, plan); holding the tensor keeps its identity


def _plan(cu: torch.Tensor) -> _Plan:
    for t, plan in _PLANS:
        if t is cu:
            return plan
    plan = _Plan(cu)
    _PLANS[:] = [(cu, plan)] + _PLANS[:3]
    return plan


@torch.compiler.disable  # eager inside compiled ViT blocks: tracing the plan cache would recompile every batch
def windowed_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0,
                       cu_seq_lens_q=None, cu_seq_lens_k=None, **_):
    """query/key/value (1, H, N, D) holding consecutive independent chunks given by `cu_seq_lens_q`
    -> ((1, N, H, D), None), like transformers' attention functions."""
    if attention_mask is not None or cu_seq_lens_q is None or cu_seq_lens_k is not cu_seq_lens_q:
        raise ValueError(f"{VISION_ATTENTION} is the Qwen2.5-VL vision attention (self-attention over cu_seqlens "
                         "chunks, no mask); set it on the vision config only")
    q, k, v = query[0], key[0], value[0]
    heads, n, dim = q.shape
    plan = _plan(cu_seq_lens_q)
    if plan.n != n:
        raise ValueError(f"cu_seqlens cover {plan.n} tokens, the input has {n}")
    outs = []
    for length, count, idx in plan.groups:
        def chunks(t):  # (H, N, D) -> (chunks, H, length, D)
            return t.index_select(1, idx).view(heads, count, length, dim).transpose(0, 1)

        o = F.scaled_dot_product_attention(chunks(q), chunks(k), chunks(v), scale=scaling, dropout_p=dropout)
        outs.append(o.transpose(1, 2).reshape(count * length, heads, dim))
    out = torch.cat(outs).index_select(0, plan.inverse)  # back to token order
    return out.unsqueeze(0), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(VISION_ATTENTION, windowed_attention)


def load_qwen_vl(path: str, dtype: torch.dtype, device: str | torch.device = "cpu",
                 batched_vision_attention: bool = True):
    """The one way this project loads a Qwen2.5-VL for training or HF generation."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype).to(device)
    if batched_vision_attention:
        _register()
        model.set_attn_implementation({"vision_config": VISION_ATTENTION})
    return model
