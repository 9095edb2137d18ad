"""What every driver sets up: Ray, the model folder, the data, and the actor pools (rollout, tools, reward)."""

from __future__ import annotations

import asyncio
import logging
import os

import ray

from actors.reward import RewardPool
from actors.rollout import RolloutPool
from actors.tools import ToolPool
from vital_ray.config import DGRPOJobConfig, expand
from vital_ray.rollout.engine import SamplingParams
from vital_ray.rollout.scheduler import RolloutScheduler, RolloutStats, start_group
from vital_ray.rollout.trajectory import TokenCodec, Trajectory, VideoRef, append_generation, append_tool_turn

log = logging.getLogger("vital_ray")


def init_ray(cfg: DGRPOJobConfig) -> None:
    if ray.is_initialized():
        return
    kwargs = {"include_dashboard": cfg.ray.include_dashboard, "log_to_driver": True}
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")  # set by `ray job submit` for the job's driver
    if address:  # join a cluster: the job's runtime env (cluster/runtime_env.yaml) applies; adding one here
        ray.init(address=address, **kwargs)  # would conflict with it
    else:  # "local": a fresh cluster, never silently joining one that `ray start` left on this machine
        env = {"env_vars": worker_env_vars(), "worker_process_setup_hook": _quiet_worker_logs()}
        ray.init(address="local", num_cpus=cfg.ray.num_cpus or None, runtime_env=env, **kwargs)


def worker_env_vars() -> dict[str, str]:
    """cluster/runtime_env.yaml's env_vars: a local run's workers get what a submitted job's do."""
    from cluster.submit import load_runtime_env

    return {k: str(v) for k, v in (load_runtime_env().get("env_vars") or {}).items()}


def _quiet_worker_logs():
    """Without a dashboard (local runs) Ray Train's placement-group cleaner cannot query actor state and warns
    every few seconds; nothing is wrong, so keep it to errors. A closure, so workers need not import this module
    before their code path is set up."""
    name = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
    return lambda: __import__("logging").getLogger(name).setLevel(40)


def load_training_records(cfg: DGRPOJobConfig) -> tuple[list, list]:
    """VITAL-format JSON from `data.files` (the stage's data mix, concatenated) or `data.train_file`, or the
    embedded synthetic long-video tasks."""
    from vital_ray.data.records import RecordError, load_records

    files = [(f.path, f.video_root or cfg.data.video_root, f.data_source) for f in cfg.data.files]
    if cfg.data.train_file:
        files.insert(0, (cfg.data.train_file, cfg.data.video_root, ""))
    if files:
        records, errors = [], []
        for path, root, source in files:
            if not os.path.exists(expand(path)):
                raise RecordError(f"{expand(path)}: training file not found (data.files / data.train_file)")
            recs, errs = load_records(expand(path), expand(root), cfg.data.on_bad_record, source)
            records += recs
            errors += errs
        return records, errors
    from vital_ray.data.synthetic import generate_dataset

    _, json_path = generate_dataset(synthetic_dir(cfg.data.synthetic_dir, cfg.data.tasks, cfg.data.shuffle_seed),
                                    num_videos=cfg.data.num_videos,
                                    duration_s=cfg.data.video_duration_s, tasks=tuple(cfg.data.tasks),
                                    records_per_video=cfg.data.records_per_video, seed=cfg.data.shuffle_seed)
    return load_records(json_path, "", cfg.data.on_bad_record)


def synthetic_dir(root: str, tasks, seed: int) -> str:
    """One folder per task mix and seed: runs with different mixes (or a held-out seed) never regenerate each
    other's videos."""
    return os.path.join(expand(root), f"{'-'.join(tasks)}_seed{seed}")


class ToolSession:
    """The tool pool and the token codec: enough to build prompts with their global view and SFT traces."""

    def __init__(self, cfg: DGRPOJobConfig, model_path: str):
        from transformers import AutoTokenizer

        self.cfg, self.model_path = cfg, model_path
        self.codec = TokenCodec(AutoTokenizer.from_pretrained(model_path))
        self.tools = ToolPool(cfg.tool, cfg.view, cfg.tool_pool)
        self.skipped: list[str] = []  # "<record id>: <reason>" of records whose video could not be used

    @staticmethod
    def _schema() -> list[dict]:
        from vital_ray.tools.clip_tool import TOOL_SCHEMA

        return [TOOL_SCHEMA]

    @property
    def tool_schemas(self) -> list[dict] | None:
        return self._schema() if self.cfg.rollout.max_turns > 0 else None

    async def _start_group(self, record, group_size: int, tools: bool | None = None) -> list[Trajectory]:
        schemas = self.tool_schemas if tools is None else (self._schema() if tools else None)
        async def view(video, duration):  # the record's own video_kwargs (MTVR) override the global view
            return await self.tools.global_view(video, duration, record.video_kwargs)

        group, error = await start_group(self.codec, view, record, group_size, schemas)
        if error:
            log.warning("skipping %s: %s", record.id, error)
            self.skipped.append(f"{record.id}: {error}")
        return group

    async def _cot_sample(self, record):
        from vital_ray import prompts
        from vital_ray.data.traces import cot_trace

        text = cot_trace(record)
        group = await self._start_group(record, 1, tools=False) if text else []
        if not group:
            return None
        ids = self.codec.encode(text + prompts.answer_turn_end())
        append_generation(group[0], ids, [0.0] * len(ids), text)
        return group[0]

    async def _tool_sample(self, record, rng):
        from vital_ray import prompts
        from vital_ray.data.records import RecordError
        from vital_ray.data.traces import teacher_trace

        try:
            trace = teacher_trace(record, rng)
        except RecordError as e:
            log.warning("skipping %s: %s", record.id, e)
            self.skipped.append(f"{record.id}: {e}")
            return None
        group = await self._start_group(record, 1, tools=True) if trace else []
        if not group:
            return None
        t = group[0]
        args = {"start_time": round(trace.start, 2), "end_time": round(trace.end, 2)}
        meta, frames = await self.tools.call("get_video_clip_frame", args, record.video, record.duration)
        if not meta.get("ok"):
            return None
        clip = VideoRef.from_meta(meta, frames)
        ids1 = self.codec.encode(trace.turn1)
        append_generation(t, ids1, [0.0] * len(ids1), trace.turn1)
        append_tool_turn(t, self.codec.encode_tool_turn(meta["text"], clip), clip)
        ids2 = self.codec.encode(trace.turn2 + prompts.answer_turn_end())
        append_generation(t, ids2, [0.0] * len(ids2), trace.turn2)
        return t

    def teacher_trajectories(self, records: list, seed: int = 0, tools: bool = True) -> list[Trajectory]:
        """SFT trajectories from ground truth: tool use with the real clip frames in the tool turn (VITAL's
        release fed none), or a single text-CoT turn. Records with no usable target or video are dropped."""
        import random

        async def build():
            rng = random.Random(seed)
            jobs = [self._tool_sample(r, rng) if tools else self._cot_sample(r) for r in records]
            return await asyncio.gather(*jobs)

        return [t for t in asyncio.run(build()) if t is not None]

    def shutdown(self) -> None:
        self.tools.shutdown()


class RLSession(ToolSession):
    """Rollout + tool + reward pools and the multi-turn scheduler over them (`rewards=False`: no reward pool,
    for eval, which scores in the driver)."""

    def __init__(self, cfg: DGRPOJobConfig, model_path: str, rewards: bool = True):
        super().__init__(cfg, model_path)
        self.gen_pool = RolloutPool(model_path, cfg.rollout, cfg.model)
        self.rewards = RewardPool(cfg.reward) if rewards else None
        self.weights_version = 0

    async def _rollout(self, records: list, group_size: int, sampling: SamplingParams):
        groups = await asyncio.gather(*(self._start_group(r, group_size) for r in records))
        trajs = [t for g in groups for t in g]
        scheduler = RolloutScheduler(self.codec, self.cfg.rollout, sampling, self.gen_pool.generate,
                                     self.tools.call, self.gen_pool.size, tools_enabled=self.tool_schemas is not None)
        stats = await scheduler.run(trajs) if trajs else RolloutStats()
        return trajs, stats

    def rollout(self, records: list, group_size: int | None = None, sampling: SamplingParams | None = None):
        """-> (trajectories, metrics). Records whose video cannot be used are skipped, counted and their reasons
        kept in `self.skipped` (with `data.on_bad_record=fail` they stop the run instead)."""
        from vital_ray.data.records import RecordError

        r = self.cfg.rollout
        sampling = sampling or SamplingParams(r.temperature, r.top_p, r.repetition_penalty)
        self.skipped = []
        trajs, stats = asyncio.run(self._rollout(records, group_size or r.group_size, sampling))
        if self.skipped and self.cfg.data.on_bad_record == "fail":
            raise RecordError(f"{len(self.skipped)} record(s) with unusable videos (data.on_bad_record=fail): "
                              + "; ".join(self.skipped))
        metrics = stats.as_metrics(self.gen_pool.size) | self.tools.stats()
        metrics["data/skipped_records"] = len(self.skipped)
        metrics["rollout/worker_restarts"] = self.gen_pool.restarts
        return trajs, metrics

    def score(self, trajs: list[Trajectory]) -> None:
        items = [(t.task, t.response_text, t.solution, t.tool_ok) for t in trajs]
        for t, res in zip(trajs, self.rewards.score(items)):
            t.reward, t.reward_components, t.correct = res.total, dict(res.components), bool(res.correct)

    def sync_weights(self, learner) -> dict:
        if self.cfg.learner.sync_method == "nccl":  # GPU to GPU, no host copy (falls back to gloo on CPU)
            self.weights_version += 1
            dtype = "bfloat16" if self.cfg.rollout.backend == "vllm" or self.cfg.model.dtype == "bfloat16" else "float32"
            if self.gen_pool.weight_source is None:  # what a restarted rollout worker loads: the learner's weights
                self.gen_pool.weight_source = lambda: (*learner.push_weights()[:2], self.weights_version)
            return learner.sync_nccl(self.gen_pool, self.weights_version, dtype)
        entries, refs, gather_s = learner.push_weights()
        self.weights_version += 1
        load_s = self.gen_pool.update_weights(entries, refs, self.weights_version)
        mb = sum(e.nbytes for e in entries) / 2**20
        return {"sync/gather_s": gather_s, "sync/load_s": load_s, "sync/mb": mb}

    def shutdown(self) -> None:
        for pool in (self.gen_pool, self.tools, self.rewards):
            if pool is not None:
                pool.shutdown()
