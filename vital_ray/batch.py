"""The one batch type passed between pools: samples holding token ids, masks and *references* to clip frames.

Like verl's DataProto in role, but pixels never ride along: each clip is a `VideoRef` whose `frames` is an
ObjectRef to a uint8 array in the Ray object store, fetched zero-copy by whichever pool needs pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vital_ray.rollout.trajectory import Trajectory, VideoRef


@dataclass
class TrainSample:
    token_ids: np.ndarray  # int64 (L,)
    loss_mask: np.ndarray  # int8 (L,): 1 on the policy's own tokens
    logprobs: np.ndarray  # float32 (L,): rollout log-probs, 0 off the mask
    videos: list[VideoRef] = field(default_factory=list)
    advantage: float = 0.0
    weight: float = 1.0  # 0 for filler samples that keep FSDP ranks in lockstep

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


def sample_from_trajectory(t: Trajectory) -> TrainSample:
    return TrainSample(np.asarray(t.token_ids, dtype=np.int64), np.asarray(t.loss_mask, dtype=np.int8),
                       np.asarray(t.logprobs, dtype=np.float32), list(t.videos), float(t.advantage))


def shard_balanced(samples: list[TrainSample], world: int) -> list[list[TrainSample]]:
    """Equal sample counts per rank (filler samples with weight 0 pad the short ones), tokens balanced greedily."""
    per_rank = -(-len(samples) // world)
    shards: list[list[TrainSample]] = [[] for _ in range(world)]
    loads = [0] * world
    for s in sorted(samples, key=lambda s: -s.num_tokens):
        r = min((r for r in range(world) if len(shards[r]) < per_rank), key=lambda r: loads[r])
        shards[r].append(s)
        loads[r] += s.num_tokens
    for shard in shards:
        while len(shard) < per_rank:
            filler = samples[0]
            shard.append(TrainSample(filler.token_ids, filler.loss_mask, filler.logprobs, filler.videos, 0.0, 0.0))
    return shards


def micro_batches(samples: list[TrainSample], micro_batch_size: int) -> list[list[TrainSample]]:
    return [samples[i:i + micro_batch_size] for i in range(0, len(samples), micro_batch_size)]


def token_budget_batches(samples: list[TrainSample], max_tokens: int) -> list[list[TrainSample]]:
    """Dynamic micro-batches, longest samples first, each as many as fit `max_tokens` padded (count x longest);
    a sample longer than the budget gets a micro-batch of its own. Sorting by length puts similar lengths
    together: less padding and fewer, fuller micro-batches than grouping in arrival order (a DGRPO group mixes
    short answers with long tool-using trajectories). Callers map results back by sample identity."""
    out: list[list[TrainSample]] = []
    cur: list[TrainSample] = []
    longest = 0
    for s in sorted(samples, key=lambda x: -x.num_tokens):  # stable: equal lengths keep their order
        n = max(longest, s.num_tokens)
        if cur and n * (len(cur) + 1) > max_tokens:
            out.append(cur)
            cur, n = [], s.num_tokens
        cur.append(s)
        longest = n
    if cur:
        out.append(cur)
    return out


def pad_micro_batches(mbs: list[list[TrainSample]], count: int) -> list[list[TrainSample]]:
    """Append zero-weight filler micro-batches up to `count`, so every FSDP rank runs the same number of
    forward/backward passes (their collectives must pair up)."""
    if not mbs or len(mbs) >= count:
        return mbs
    f = mbs[-1][-1]
    filler = TrainSample(f.token_ids, f.loss_mask, f.logprobs, f.videos, 0.0, 0.0)
    return mbs + [[filler] for _ in range(count - len(mbs))]
