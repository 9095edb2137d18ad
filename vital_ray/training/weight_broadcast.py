"""Weight sync over a torch.distributed group: learner rank 0 broadcasts flat uint8 buckets to rollout workers.

The group is separate from the learner's FSDP group (its own TCPStore), so rollout processes join without
touching the learner's default group. NCCL on GPUs (GPU to GPU over NVLink: no host copy, no object store);
gloo on CPU, which lets tests run this exact code. Bucket layout is `weights.plan_buckets`, as for the
object-store path, so both paths agree on names, dtypes and offsets.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Callable, Iterable

import torch
import torch.distributed as dist

from vital_ray.training.weights import BucketEntry


class SyncGroup:
    """rank 0 = the sender (learner rank 0); ranks 1.. = receivers (rollout workers)."""

    def __init__(self, addr: str, port: int, rank: int, world: int, device: torch.device, timeout_s: float = 600):
        self.rank, self.world, self.device = rank, world, torch.device(device)
        timeout = timedelta(seconds=timeout_s)
        store = dist.PrefixStore("vital_ray_sync", dist.TCPStore(addr, port, world, is_master=rank == 0,
                                                                 timeout=timeout, wait_for_workers=True))
        if self.device.type == "cuda":
            opts = dist.ProcessGroupNCCL.Options()
            opts.is_high_priority_stream = False
            self.pg = dist.ProcessGroupNCCL(store, rank, world, opts)
        else:
            self.pg = dist.ProcessGroupGloo(store, rank, world, timeout)

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> None:
        opts = dist.BroadcastOptions()
        opts.rootRank, opts.rootTensor = src, 0
        self.pg.broadcast([tensor], opts).wait()


def pack(tensors: Iterable[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Tensors -> one flat uint8 buffer on `device` (their raw bytes, back to back)."""
    return torch.cat([t.detach().contiguous().reshape(-1).view(torch.uint8).to(device) for t in tensors])


def unpack(buf: torch.Tensor, entries: list[BucketEntry]) -> dict[str, torch.Tensor]:
    """Views into `buf` (one bucket) with each entry's dtype and shape. Offsets are relative to the bucket."""
    out = {}
    for e in entries:
        raw = buf[e.offset:e.offset + e.nbytes]
        out[e.name] = raw.view(getattr(torch, e.dtype)).reshape(e.shape)
    return out


def by_bucket(entries: list[BucketEntry]) -> list[list[BucketEntry]]:
    groups: list[list[BucketEntry]] = [[] for _ in range((entries[-1].bucket + 1) if entries else 0)]
    for e in entries:
        groups[e.bucket].append(e)
    return groups


def receive_state(group: SyncGroup, entries: list[BucketEntry],
                  on_bucket: Callable[[dict[str, torch.Tensor]], None]) -> int:
    """Receiver: allocate, receive and hand each bucket's tensors to `on_bucket` (e.g. the engine's loader)
    before the next bucket arrives, so at most one bucket is held at a time. Returns bytes received."""
    got = 0
    for bucket in by_bucket(entries):
        n = bucket[-1].offset + bucket[-1].nbytes
        buf = torch.empty(n, dtype=torch.uint8, device=group.device)
        group.broadcast(buf, src=0)
        on_bucket(unpack(buf, bucket))
        got += n
    return got


def send_stream(group: SyncGroup, named: Iterable[tuple[str, torch.Tensor]], entries: list[BucketEntry]) -> int:
    """Sender, streaming: tensors arrive one at a time (e.g. FSDP all-gathers) in plan order; each bucket is
    broadcast as soon as it is complete. Returns bytes sent."""
    it, sent = iter(named), 0
    for bucket in by_bucket(entries):
        tensors = []
        for e in bucket:
            name, t = next(it)
            if name != e.name:
                raise RuntimeError(f"weight stream out of plan order: got {name}, planned {e.name}")
            tensors.append(t)
        buf = pack(tensors, group.device)
        group.broadcast(buf, src=0)
        sent += buf.numel()
    return sent
