"""Rollout pool: generation actors behind the `RolloutEngine` interface (transformers now, vLLM on GPU)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

import numpy as np
import ray

from actors.common import gang_options, limit_threads, placement, release, wait_placed
from vital_ray.config import ModelConfig, RolloutConfig
from vital_ray.models.inputs import VideoInput
from vital_ray.rollout.engine import GenRequest, GenResult, SamplingParams
from vital_ray.training.weights import from_buckets

log = logging.getLogger("vital_ray")
LOST_WORKER_RETRIES = 3  # a generate call whose worker died is re-run (on the restarted worker) this many times


def make_engine(model_path: str, rollout: RolloutConfig, model: ModelConfig):
    if rollout.backend == "vllm":
        from vital_ray.rollout.vllm_engine import VLLMEngine  # GPU extra

        return VLLMEngine(model_path, rollout, model)
    from vital_ray.rollout.engine import HFEngine

    import torch

    device = "cuda" if rollout.num_gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"
    return HFEngine(model_path, model.dtype, device)


def to_gen_requests(requests: list[dict]) -> list[GenRequest]:
    """Scheduler requests {key, token_ids, videos: [(frames, second_per_grid)], max_new_tokens} -> GenRequests.
    Frames are ObjectRefs (training: zero-copy reads from the object store) or uint8 arrays (serving)."""
    frames = [v[0] for r in requests for v in r["videos"]]
    pos = [i for i, f in enumerate(frames) if isinstance(f, ray.ObjectRef)]
    for i, arr in zip(pos, ray.get([frames[i] for i in pos]) if pos else ()):
        frames[i] = arr
    it = iter(frames)
    return [GenRequest(r["key"], r["token_ids"], [VideoInput(next(it), spg) for _, spg in r["videos"]],
                       r["max_new_tokens"]) for r in requests]


@ray.remote(max_restarts=-1)
class RolloutWorker:
    def __init__(self, model_path: str, rollout: RolloutConfig, model: ModelConfig, threads: int = 1):
        limit_threads(threads)
        self.engine = make_engine(model_path, rollout, model)
        self.version = 0
        self.sync_id = None  # the weight-broadcast group this process belongs to (None after a restart)

    def ready(self) -> int:
        return self.version

    def generate(self, requests: list[dict], sampling: SamplingParams) -> tuple[int, list[GenResult]]:
        """-> (weights version used, results): the pool checks the version, since an actor restarted while idle
        answers the next call normally, with the initial weights."""
        return self.version, self.engine.generate(to_gen_requests(requests), sampling)

    def weights_checksum(self) -> dict[str, float]:
        """Per-parameter sums: lets tests and operators confirm which weights a worker serves."""
        return {k: float(v.double().sum()) for k, v in self.engine.model.state_dict().items()}

    def placement(self) -> dict:
        return placement()

    def join_sync_group(self, addr: str, port: int, rank: int, world: int) -> int:
        """Join the learner's weight-broadcast group (NCCL on the engine's GPU, gloo on CPU)."""
        import torch

        from vital_ray.training.weight_broadcast import SyncGroup

        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        self.sync_group = SyncGroup(addr, port, rank, world, device)
        self.sync_id = f"{addr}:{port}"
        return rank

    def sync_group_id(self) -> str | None:
        return self.sync_id

    def receive_weights(self, entries, version: int) -> float:
        """Receive the buckets broadcast by learner rank 0, loading each into the engine as it arrives."""
        from vital_ray.training.weight_broadcast import receive_state

        t0 = time.perf_counter()
        receive_state(self.sync_group, entries, self.engine.load_weights)
        self.version = version
        return time.perf_counter() - t0

    def update_weights(self, entries, version: int, *buckets: np.ndarray) -> float:
        """One call per sync: all buckets arrive as top-level args, resolved by Ray from the object store."""
        t0 = time.perf_counter()
        self.engine.load_weights(from_buckets(entries, list(buckets)))
        self.version = version
        return time.perf_counter() - t0


async def _when_up(call: Callable[[], Awaitable], wait_s: float):
    """Await `call()` until its actors answer: calls fail fast (ActorUnavailableError) while an actor restarts."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await call()
        except ray.exceptions.RayActorError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


class RolloutPool:
    """Dispatches generation batches to idle workers; `generate` is awaited by the rollout scheduler."""

    def __init__(self, model_path: str, rollout: RolloutConfig, model: ModelConfig):
        threads = max(1, int(rollout.num_cpus_per_worker))
        opts, self.pg = gang_options(rollout.num_workers, rollout.num_cpus_per_worker, rollout.num_gpus_per_worker,
                            "rollout pool")
        self.workers = [RolloutWorker.options(**o).remote(model_path, rollout, model, threads) for o in opts]
        wait_placed([w.ready.remote() for w in self.workers], f"{len(self.workers)} rollout workers")
        self.idle: asyncio.Queue | None = None
        self.weights = None  # (entries, bucket refs, version) of the last sync: what a restarted worker reloads
        # Direct (NCCL) syncs keep no copy: a restarted worker is given weights fetched through the object store
        # from here instead, () -> (entries, bucket refs, version); set by whoever drives those syncs.
        self.weight_source: Callable[[], tuple] | None = None
        self.version = 0  # the weights version every worker must serve (0: the model folder's)
        self.restarts = 0
        self._fetching: asyncio.Lock | None = None

    @property
    def size(self) -> int:
        return len(self.workers)

    async def generate(self, requests: list[dict], sampling: SamplingParams) -> list[GenResult]:
        if self.idle is None:  # created lazily inside the running event loop
            self.idle = asyncio.Queue()
            for w in self.workers:
                self.idle.put_nowait(w)
        worker = await self.idle.get()
        try:
            for attempt in range(LOST_WORKER_RETRIES + 1):
                try:
                    version, results = await worker.generate.remote(requests, sampling)
                    if version == self.version:
                        return results
                    why = f"restarted while idle (served weights v{version}, not v{self.version})"
                    cause = None
                except ray.exceptions.RayActorError as e:  # died, or unreachable while restarting
                    why, cause = f"died ({type(e).__name__})", e
                if attempt == LOST_WORKER_RETRIES:
                    raise RuntimeError(f"rollout worker lost {attempt + 1} times in one generate call") from cause
                # generation is a pure function of (requests, weights): redo it once the actor has the weights
                log.warning("rollout worker %s; reloading weights and retrying", why)
                self.restarts += 1
                await self._restore(worker)
        finally:
            self.idle.put_nowait(worker)

    async def _restore(self, worker, wait_s: float = 180.0) -> float:
        """A restarted actor runs __init__ again, i.e. holds the initial weights: reload the last synced ones.
        -> load seconds."""
        await _when_up(lambda: worker.ready.remote(), wait_s)
        weights = self.weights
        if weights is None and self.weight_source is not None:
            self._fetching = self._fetching or asyncio.Lock()
            async with self._fetching:  # a learner gather (a collective): one at a time
                weights = await asyncio.to_thread(self.weight_source)
        if weights is None:
            return 0.0
        entries, refs, version = weights
        return await worker.update_weights.remote(entries, version, *refs)

    def sync_group_ids(self, wait_s: float = 180.0) -> list[str | None]:
        """Each worker's weight-broadcast group (None: never joined, or restarted since); waits out restarts."""
        return asyncio.run(_when_up(lambda: asyncio.gather(*(w.sync_group_id.remote() for w in self.workers)),
                                    wait_s))

    def mark_synced(self, version: int) -> None:
        """Weights `version` reached every worker by another path (NCCL broadcast); no copy is kept here."""
        self.version, self.weights = version, None

    def update_weights(self, entries, bucket_refs, version: int) -> float:
        # keeping the refs pins one copy of the weights in the object store until the next sync
        self.weights = (entries, list(bucket_refs), version)
        self.version = version
        refs = [w.update_weights.remote(entries, version, *bucket_refs) for w in self.workers]
        seconds = []
        for w, ref in zip(self.workers, refs):
            try:
                seconds.append(ray.get(ref))
            except ray.exceptions.RayActorError:  # died before or during the sync: load into the restarted actor
                self.restarts += 1
                seconds.append(asyncio.run(self._restore(w)))
        return max(seconds)

    def placements(self) -> list[dict]:
        return ray.get([w.placement.remote() for w in self.workers])

    def shutdown(self):
        for w in self.workers:
            ray.kill(w)
        release(self.pg)
