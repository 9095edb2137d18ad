"""DGRPO (or GRPO) on separate Ray actor pools: the main training job.

    python -m pipelines.dgrpo --config configs/demo.yaml [key.sub=value ...]

Features
- rollout pool (transformers `generate` on CPU/GPU; vLLM behind the same interface), multi-turn with the clip tool
- video tool pool (decord, CPU actors; frames travel as object refs), reward pool, FSDP2 learner pool
- DGRPO advantages `A = w(mu) * (r - mu) / (sigma + eps)` (`algo.estimator=grpo` for plain GRPO), PPO-clip + k3 KL
- weight sync learner -> rollout each iteration through the object store (bucketed numpy, one call per worker)
- per-iteration metrics (console, metrics.jsonl, wandb offline), reward-curve PNG, periodic HF checkpoints
Flags: every field of `vital_ray.config.DGRPOJobConfig` as a dotted override, e.g. `rollout.group_size=8`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from tqdm import tqdm

from vital_ray.algorithms.advantages import compute_advantages
from vital_ray.batch import sample_from_trajectory
from vital_ray.config import ConfigError, DGRPOJobConfig, expand, load_config, to_dict
from vital_ray.data.sampler import PromptSampler
from vital_ray.metrics import MetricsLogger, PhaseTimer, console_line, trajectory_metrics
from vital_ray.models import ensure_model_folder
from vital_ray.telemetry import Telemetry


def assign_advantages(trajs, algo) -> dict:
    uids = {u: i for i, u in enumerate(dict.fromkeys(t.uid for t in trajs))}
    rewards = torch.tensor([t.reward for t in trajs], dtype=torch.float32)
    group = torch.tensor([uids[t.uid] for t in trajs], dtype=torch.long)
    adv, weights = compute_advantages(rewards, group, algo)
    for t, a in zip(trajs, adv.tolist()):
        t.advantage = a
    return {"adv/abs_mean": float(adv.abs().mean()), "adv/dgrpo_weight": float(weights.mean()),
            "adv/zero_var_groups": float(sum(float(rewards[group == g].std()) == 0 for g in uids.values())
                                         / max(len(uids), 1))}


def save_checkpoint(learner, out_dir: str, iteration: int, sampler: PromptSampler) -> str:
    path = os.path.join(out_dir, "checkpoints", f"iter_{iteration:05d}")
    learner.save_hf(path)
    with open(os.path.join(path, "trainer_state.json"), "w") as f:
        json.dump({"iteration": iteration, "sampler": sampler.state_dict()}, f)
    return path


def warmup(cfg: DGRPOJobConfig, session, learner, sampler: PromptSampler) -> None:
    """SFT on teacher tool-use traces (clip frames included), then push the weights to the rollout pool.
    The traces are built once (two per record, different tool windows) and cycled through."""
    trajs = session.teacher_trajectories(sampler.records * 2, seed=cfg.trainer.seed)
    samples = [sample_from_trajectory(t) for t in trajs]
    order = PromptSampler(samples, seed=cfg.data.shuffle_seed + 7)
    learner.set_lr(cfg.trainer.sft_warmup_lr)
    bar = tqdm(range(cfg.trainer.sft_warmup_steps), desc="SFT warm-up", disable=not cfg.trainer.progress)
    for _ in bar:
        m = learner.sft_update(order.next(cfg.trainer.sft_batch_size))
        bar.set_postfix(loss=f"{m['sft_loss']:.3f}")
    learner.set_lr(cfg.learner.lr)
    learner.reset_reference()  # DGRPO's KL anchor is the warmed-up policy, not the random init
    session.sync_weights(learner)


def train(cfg: DGRPOJobConfig) -> dict:
    from actors.learner import LearnerPool
    from pipelines.session import RLSession, init_ray, load_training_records

    out_dir = expand(cfg.trainer.output_dir)
    init_ray(cfg)
    model_path = ensure_model_folder(cfg.model)
    records, errors = load_training_records(cfg)
    sampler = PromptSampler(records, seed=cfg.data.shuffle_seed)
    session = RLSession(cfg, model_path)
    learner = LearnerPool(model_path, cfg.learner, cfg.algo, cfg.model)
    logger = MetricsLogger(out_dir, cfg.trainer.wandb_project, to_dict(cfg))
    telemetry = Telemetry("dgrpo")
    session.tools.telemetry = telemetry
    timer = PhaseTimer(on_phase=telemetry.set_phase)
    print(f"vital_ray DGRPO: {len(records)} records ({len(errors)} rejected), model {model_path}, "
          f"{cfg.trainer.iterations} iterations x {cfg.trainer.prompts_per_iter} prompts x "
          f"{cfg.rollout.group_size} rollouts", flush=True)
    if cfg.trainer.sft_warmup_steps:
        telemetry.set_phase("sft")
        warmup(cfg, session, learner, sampler)
    last = {}
    bar = tqdm(range(1, cfg.trainer.iterations + 1), desc="DGRPO", disable=not cfg.trainer.progress)
    for it in bar:
        t0 = time.perf_counter()
        with timer("rollout"):
            trajs, m = session.rollout(sampler.next(cfg.trainer.prompts_per_iter))
        with timer("reward"):
            session.score(trajs)
        with timer("advantage"):
            m |= assign_advantages(trajs, cfg.algo)
        with timer("train"):
            m |= {f"train/{k}": v for k, v in learner.policy_update([sample_from_trajectory(t) for t in trajs]).items()}
        with timer("sync"):
            m |= session.sync_weights(learner)
        if cfg.trainer.checkpoint_every and it % cfg.trainer.checkpoint_every == 0:
            with timer("checkpoint"):
                save_checkpoint(learner, out_dir, it, sampler)
        m |= trajectory_metrics(trajs) | timer.pop()
        m["time/iteration"] = time.perf_counter() - t0
        logger.log(it, m)
        logger.samples(it, trajs)
        telemetry.iteration(it, m)
        bar.write(console_line(it, m))
        bar.set_postfix(reward=f"{m.get('reward/mean', 0):.2f}")
        last = m
    final = save_checkpoint(learner, out_dir, cfg.trainer.iterations, sampler)
    png = logger.plot()
    logger.close()
    session.shutdown()
    learner.shutdown()
    print(f"checkpoint: {final}\nreward curve: {png}\nmetrics: {logger.path}", flush=True)
    return last


def parse_args(argv=None) -> DGRPOJobConfig:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="YAML file (defaults: vital_ray.config.DGRPOJobConfig)")
    ap.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rollout.group_size=8")
    args = ap.parse_args(argv)
    return load_config(DGRPOJobConfig, args.config, args.overrides)


def main(argv=None) -> int:
    try:
        cfg = parse_args(argv)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
