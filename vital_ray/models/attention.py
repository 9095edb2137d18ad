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


def windowed_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0,
                       cu_seq_lens_q=None, cu_seq_lens_k=None, **_):
    """query/key/value (1, H, N, D) holding consecutive independent chunks given by `cu_seq_lens_q`
    -> ((1, N, H, D), None), like transformers' attention functions."""
    if attention_mask is not None or cu_seq_lens_q is None or cu_seq_lens_k is not cu_seq_lens_q:
        raise ValueError(f"{VISION_ATTENTION} is the Qwen2.5-VL vision attention (self-attention over cu_seqlens "
                         "chunks, no mask); set it on the vision config only")
    q, k, v = query[0], key[0], value[0]
    heads, n, dim = q.shape
    bounds = cu_seq_lens_q.tolist()  # one host sync per layer
    by_len: dict[int, list[int]] = defaultdict(list)
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end > start:
            by_len[end - start].append(start)
    order, outs = [], []
    for length, starts in by_len.items():
        idx = (torch.tensor(starts, device=q.device)[:, None] + torch.arange(length, device=q.device)).reshape(-1)
        order.append(idx)

        def chunks(t):  # (H, N, D) -> (chunks, H, length, D)
            return t.index_select(1, idx).view(heads, len(starts), length, dim).transpose(0, 1)

        o = F.scaled_dot_product_attention(chunks(q), chunks(k), chunks(v), scale=scaling,
                                           dropout_p=dropout)
        outs.append(o.transpose(1, 2).reshape(len(starts) * length, heads, dim))
    perm = torch.cat(order)
    out = torch.cat(outs).index_select(0, torch.argsort(perm))  # back to token order
    assert out.shape[0] == n, "cu_seqlens must cover every token"
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
