"""Weight sync payloads: a state dict as a few flat numpy buckets (one object-store put per bucket).

Numpy crosses the object store 10-40x faster than pickled torch tensors (cpu-feasibility.md section 5), and a
handful of buckets in one call avoids per-tensor RPCs (the open-instruct #1535 failure mode).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

_TORCH_TO_NP = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.int16}


@dataclass
class BucketEntry:
    name: str
    dtype: str  # torch dtype name
    shape: tuple
    bucket: int
    offset: int  # bytes
    nbytes: int


def to_buckets(state: dict[str, torch.Tensor], bucket_mb: int) -> tuple[list[BucketEntry], list[np.ndarray]]:
    limit = max(1, bucket_mb) * 2**20
    entries, buckets, current, used = [], [], [], 0
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        arr = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
        raw = arr.reshape(-1).view(np.uint8)
        if current and used + raw.nbytes > limit:
            buckets.append(np.concatenate(current))
            current, used = [], 0
        entries.append(BucketEntry(name, str(t.dtype).removeprefix("torch."), tuple(t.shape), len(buckets), used,
                                   raw.nbytes))
        current.append(raw)
        used += raw.nbytes
    if current:
        buckets.append(np.concatenate(current))
    return entries, buckets


def from_buckets(entries: list[BucketEntry], buckets: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """Zero-copy tensor views into the (read-only, object-store backed) buckets; callers copy them out."""
    out = {}
    with warnings.catch_warnings():  # torch warns that the shared-memory buffer is not writable; we never write
        warnings.simplefilter("ignore", UserWarning)
        for e in entries:
            raw = buckets[e.bucket][e.offset:e.offset + e.nbytes]
            dtype = getattr(torch, e.dtype)
            t = torch.from_numpy(raw.view(_TORCH_TO_NP[dtype])).reshape(e.shape)
            out[e.name] = t.view(torch.bfloat16) if dtype == torch.bfloat16 else t
    return out
