"""Qwen2.5-VL loading with a batched vision attention.

transformers' ViT attention for sdpa/eager loops over the `cu_seqlens` chunks in Python: one attention call per
112-px window per 2 frames per layer. A long-video batch has tens of thousands of windows, so the ViT spent its
time launching tiny kernels (the learner's MFU on an H200 was 2.4%). `windowed_attention` groups the chunks by
length and runs one SDPA call per distinct length (a handful per layer), with the same math: exact up to
float rounding, on CPU and GPU, with autograd.

It is installed by giving each vision attention module a subclass whose `forward` calls it: transformers hands
an attention function the `cu_seqlens` only for flash-named implementations, and from 5.25 on it also tries
to load a flash kernel for any such name, so routing through `AttentionInterface` would need a kernel that
does not exist here. The subclass keeps the module's own weights, rotary helper and output projection; the
decoder keeps sdpa. `tests/test_model_kit.py` checks it against transformers' own per-window loop.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import torch
import torch.nn.functional as F


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
def windowed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor,
                       scale: float | None = None, dropout: float = 0.0) -> torch.Tensor:
    """q/k/v (H, N, D) holding consecutive independent chunks given by `cu_seqlens` -> (N, H, D)."""
    heads, n, dim = q.shape
    plan = _plan(cu_seqlens)
    if plan.n != n:
        raise ValueError(f"cu_seqlens cover {plan.n} tokens, the input has {n}")
    outs = []
    for length, count, idx in plan.groups:
        def chunks(t):  # (H, N, D) -> (chunks, H, length, D)
            return t.index_select(1, idx).view(heads, count, length, dim).transpose(0, 1)

        o = F.scaled_dot_product_attention(chunks(q), chunks(k), chunks(v), scale=scale, dropout_p=dropout)
        outs.append(o.transpose(1, 2).reshape(count * length, heads, dim))
    return torch.cat(outs).index_select(0, plan.inverse)  # back to token order


class _BatchedVisionAttention:
    """Mixed in front of the model's own vision attention class (see `use_batched_vision_attention`)."""

    _stock: type

    def forward(self, hidden_states, cu_seqlens, position_embeddings=None, **_):
        n = hidden_states.shape[0]
        q, k, v = self.qkv(hidden_states).reshape(n, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        cos, sin = position_embeddings
        q, k = sys.modules[self._stock.__module__].apply_rotary_pos_emb_vision(q, k, cos, sin)
        out = windowed_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), cu_seqlens,
                                 scale=self.scaling, dropout=self.attention_dropout if self.training else 0.0)
        return self.proj(out.reshape(n, -1))


_SUBCLASSES: dict[type, type] = {}


def _batched_class(stock: type) -> type:
    if stock not in _SUBCLASSES:
        _SUBCLASSES[stock] = type(f"Batched{stock.__name__}", (_BatchedVisionAttention, stock), {"_stock": stock})
    return _SUBCLASSES[stock]


def vision_attention_modules(model) -> list[torch.nn.Module]:
    """The ViT blocks' attention modules of a `Qwen2_5_VLForConditionalGeneration`."""
    return [block.attn for block in model.model.visual.blocks]


def use_batched_vision_attention(model, enabled: bool = True) -> None:
    """Switch the ViT attention between the batched one and transformers' own, in place (weights untouched)."""
    for attn in vision_attention_modules(model):
        stock = getattr(type(attn), "_stock", type(attn))
        attn.__class__ = _batched_class(stock) if enabled else stock


def load_qwen_vl(path: str, dtype: torch.dtype, device: str | torch.device = "cpu",
                 batched_vision_attention: bool = True):
    """The one way this project loads a Qwen2.5-VL for training or HF generation."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    # use_kernels=False: transformers >= 5.25 swaps layers for Hugging Face Hub kernels whenever the `kernels`
    # package is installed (vLLM brings it): a download at load time, and numerics that differ from vLLM's
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype, use_kernels=False).to(device)
    use_batched_vision_attention(model, batched_vision_attention)
    return model
