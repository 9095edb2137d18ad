"""Weight sync payloads: a state dict as a few flat numpy buckets (one object-store put per bucket).

Numpy crosses the object store 10-40x faster than pickled torch tensors (docs/engineering-notes.md §3), and a
handful of buckets in one call avoids per-tensor RPCs (the open-instruct #1535 failure mode).
"""

from __future__ import annotations

import math
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


def plan_buckets(specs, bucket_mb: int) -> list[BucketEntry]:
    """(name, torch dtype, shape) in order -> where each tensor's bytes sit in ~bucket_mb flat buckets.
    Shared by the object-store path (numpy buckets) and the NCCL broadcast path (uint8 CUDA buckets)."""
    limit = max(1, bucket_mb) * 2**20
    entries, bucket, used = [], 0, 0
    for name, dtype, shape in specs:
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if used and used + nbytes > limit:
            bucket, used = bucket + 1, 0
        entries.append(BucketEntry(name, str(dtype).removeprefix("torch."), tuple(shape), bucket, used, nbytes))
        used += nbytes
    return entries


def to_buckets(state: dict[str, torch.Tensor], bucket_mb: int) -> tuple[list[BucketEntry], list[np.ndarray]]:
    entries = plan_buckets([(k, v.dtype, tuple(v.shape)) for k, v in state.items()], bucket_mb)
    parts: list[list[np.ndarray]] = [[] for _ in range(entries[-1].bucket + 1)] if entries else []
    for e, t in zip(entries, state.values()):
        t = t.detach().cpu().contiguous()
        arr = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
        parts[e.bucket].append(arr.reshape(-1).view(np.uint8))
    return entries, [np.concatenate(p) for p in parts]


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
