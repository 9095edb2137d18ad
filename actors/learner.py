"""Learner pool: FSDP2 ranks in Ray actors (gloo on CPU, NCCL on GPU). Rank 0 exposes the rendezvous."""

from __future__ import annotations

import time

import ray
import torch

from actors.common import gang_options, limit_threads, placement, release, wait_placed
from vital_ray.batch import TrainSample, shard_balanced
from vital_ray.config import AlgoConfig, LearnerConfig, ModelConfig
from vital_ray.training import checkpoint, fsdp
from vital_ray.training.weights import to_buckets


@ray.remote
class LearnerWorker:
    def __init__(self, rank: int, world: int, threads: int = 1):
        limit_threads(threads)
        self.rank, self.world = rank, world
        self.learner = None

    def rendezvous(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), fsdp.free_port()

    def setup(self, addr: str, port: int, model_path: str, learner: LearnerConfig, algo: AlgoConfig,
              model: ModelConfig, ref_path: str | None) -> int:
        from vital_ray.training.learner import FSDPLearner

        backend = fsdp.init_distributed(self.rank, self.world, addr, port, learner.backend)
        device = fsdp.device_for(backend)
        self.learner = FSDPLearner(model_path, learner, algo, model.dtype, model.freeze_vision, ray.get, device,
                                   ref_path=ref_path)
        return self.rank

    def policy_update(self, samples: list[TrainSample]) -> dict:
        return self.learner.policy_update(samples)

    def sft_update(self, samples: list[TrainSample]) -> dict:
        return self.learner.sft_update(samples)

    def logprobs(self, samples: list[TrainSample]):
        return self.learner.logprobs(samples)

    def set_lr(self, lr: float) -> None:
        self.learner.set_lr(lr)

    def reset_reference(self) -> None:
        self.learner.reset_reference()

    def push_weights(self, bucket_mb: int):
        """Collective gather; rank 0 puts the buckets in the object store and returns (entries, refs, seconds)."""
        t0 = time.perf_counter()
        state = self.learner.full_state()
        if self.rank != 0:
            return None
        entries, buckets = to_buckets(state, bucket_mb)
        return entries, [ray.put(b) for b in buckets], time.perf_counter() - t0

    def save_checkpoint(self, path: str, state: dict) -> str:
        return checkpoint.save(self.learner, path, state)

    def placement(self) -> dict:
        return placement()

    # -- NCCL weight sync: rank 0 joins a group with the rollout workers and broadcasts buckets ------------------
    def weight_plan(self, bucket_mb: int, dtype: str):
        from vital_ray.training.weights import plan_buckets

        return plan_buckets(self.learner.weight_specs(getattr(torch, dtype)), bucket_mb) if self.rank == 0 else None

    def join_sync_group(self, addr: str, port: int, world: int) -> int:
        from vital_ray.training.weight_broadcast import SyncGroup

        self.sync_group = SyncGroup(addr, port, 0, world, self.learner.device)
        return 0

    def broadcast_weights(self, entries, dtype: str) -> float:
        """Collective over the learner ranks (all-gathers); rank 0 streams the buckets to the group."""
        from vital_ray.training.weight_broadcast import send_stream

        t0 = time.perf_counter()
        stream = self.learner.iter_full_weights(getattr(torch, dtype))
        if self.rank == 0:
            send_stream(self.sync_group, stream, entries)
        else:
            for _ in stream:
                pass
        return time.perf_counter() - t0

    def load_checkpoint(self, path: str) -> dict:
        return checkpoint.load(self.learner, path)


class LearnerFailure(RuntimeError):
    """A learner rank died, raised, or overran `learner.step_timeout_s`: the step is lost, the pool is torn down;
    the driver stops and `--resume` continues from the last checkpoint."""


class LearnerPool:
    def __init__(self, model_path: str, learner: LearnerConfig, algo: AlgoConfig, model: ModelConfig,
                 ref_path: str | None = None):
        self.cfg = learner
        threads = max(1, int(learner.num_cpus_per_worker))
        n = learner.num_workers
        opts, self.pg = gang_options(n, learner.num_cpus_per_worker, learner.num_gpus_per_worker, "learner pool")
        self.workers = [LearnerWorker.options(**o).remote(r, n, threads) for r, o in enumerate(opts)]
        self.sync_id = None  # the weight-broadcast group formed with the rollout workers
        addr, port = wait_placed([self.workers[0].rendezvous.remote()], f"learner rank 0 of {n}")[0]
        self._all([w.setup.remote(addr, port, model_path, learner, algo, model, ref_path) for w in self.workers],
                  "setup")

    def _all(self, refs: list, what: str) -> list:
        """ray.get over all ranks that fails fast: when one rank dies the others sit in a collective until the
        process-group timeout, so the first error (or the step deadline) tears the whole pool down at once."""
        pending, deadline = list(refs), time.monotonic() + self.cfg.step_timeout_s
        while pending:
            left = deadline - time.monotonic()
            done, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, left))
            if not done:
                ranks = [refs.index(r) for r in pending]
                self.shutdown()
                raise LearnerFailure(f"learner {what}: ranks {ranks} did not finish within "
                                     f"learner.step_timeout_s={self.cfg.step_timeout_s:g}; resume from the last "
                                     "checkpoint (--resume)")
            try:
                ray.get(done[0])
            except ray.exceptions.RayError as e:
                rank = refs.index(done[0])
                self.shutdown()
                cause = "died" if isinstance(e, ray.exceptions.RayActorError) else "failed"
                raise LearnerFailure(f"learner rank {rank} {cause} during {what} "
                                     f"({type(e).__name__}: {str(e).strip().splitlines()[0][:200]}); the step is "
                                     "lost, resume from the last checkpoint (--resume)") from None
        return ray.get(refs)

    def _fan_out(self, method: str, samples: list[TrainSample]) -> list:
        shards = shard_balanced(samples, len(self.workers))
        return self._all([getattr(w, method).remote(s) for w, s in zip(self.workers, shards)], method)

    def policy_update(self, samples: list[TrainSample]) -> dict:
        return _mean_metrics(self._fan_out("policy_update", samples))

    def sft_update(self, samples: list[TrainSample]) -> dict:
        return _mean_metrics(self._fan_out("sft_update", samples))

    def logprobs(self, samples: list[TrainSample]):
        """Single-rank scoring (no sharding of samples) for diagnostics: every rank must join the collectives."""
        return self._all([w.logprobs.remote(samples) for w in self.workers], "logprobs")[0]

    def set_lr(self, lr: float) -> None:
        ray.get([w.set_lr.remote(lr) for w in self.workers])

    def reset_reference(self) -> None:
        ray.get([w.reset_reference.remote() for w in self.workers])

    def push_weights(self):
        return self._all([w.push_weights.remote(self.cfg.sync_bucket_mb) for w in self.workers], "push_weights")[0]

    def save_checkpoint(self, path: str, state: dict) -> str:
        """HF folder + optimizer shards + RNG + `state` (vital_ray.training.checkpoint)."""
        return self._all([w.save_checkpoint.remote(path, state) for w in self.workers], "save_checkpoint")[0]

    def load_checkpoint(self, path: str) -> dict:
        return self._all([w.load_checkpoint.remote(path) for w in self.workers], "load_checkpoint")[0]

    def placements(self) -> list[dict]:
        return ray.get([w.placement.remote() for w in self.workers])

    def sync_nccl(self, rollout_pool, version: int, dtype: str = "bfloat16") -> dict:
        """Learner rank 0 -> every rollout worker, bucketed broadcast over one torch.distributed group (NCCL on
        GPUs, gloo on CPU). The group is formed on first use and again whenever a rollout worker restarted (a
        group with a dead member would hang). Returns seconds (wall, learner side, slowest receiver)."""
        t0 = time.perf_counter()
        rollout_workers = rollout_pool.workers
        regroup = self.sync_id is None or any(i != self.sync_id for i in rollout_pool.sync_group_ids())
        if regroup:
            addr, port = ray.get(self.workers[0].rendezvous.remote())
            world = 1 + len(rollout_workers)
            ray.get([self.workers[0].join_sync_group.remote(addr, port, world)]
                    + [w.join_sync_group.remote(addr, port, i + 1, world) for i, w in enumerate(rollout_workers)])
            self.sync_id = f"{addr}:{port}"
        t1 = time.perf_counter()
        entries = ray.get(self.workers[0].weight_plan.remote(self.cfg.sync_bucket_mb, dtype))
        send = [w.broadcast_weights.remote(entries, dtype) for w in self.workers]
        recv = [w.receive_weights.remote(entries, version) for w in rollout_workers]
        send_s, recv_s = ray.get(send), ray.get(recv)
        rollout_pool.mark_synced(version)
        return {"sync/setup_s": t1 - t0, "sync/wall_s": time.perf_counter() - t1, "sync/send_s": max(send_s),
                "sync/load_s": max(recv_s), "sync/mb": sum(e.nbytes for e in entries) / 2**20,
                "sync/regrouped": float(regroup)}

    def shutdown(self):
        for w in self.workers:
            ray.kill(w)
        release(self.pg)
        self.workers, self.pg = [], None  # idempotent: a failed step already shut the pool down


def _mean_metrics(parts: list[dict]) -> dict:
    keys = parts[0].keys()
    return {k: (sum(p[k] for p in parts) if k == "tokens" else sum(p[k] for p in parts) / len(parts)) for k in keys}
