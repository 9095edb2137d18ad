"""DGRPO (or GRPO) on separate Ray actor pools: the main training job.

    python -m pipelines.dgrpo --config configs/demo.yaml [key.sub=value ...]

Features
- rollout pool (transformers `generate` on CPU/GPU; vLLM behind the same interface), multi-turn with the clip tool
- video tool pool (decord, CPU actors; frames travel as object refs), reward pool, FSDP2 learner pool
- DGRPO advantages `A = w(mu) * (r - mu) / (sigma + eps)` (`algo.estimator=grpo` for plain GRPO), PPO-clip + k3 KL
- weight sync learner -> rollout each iteration through the object store (bucketed numpy, one call per worker)
- per-iteration metrics (console, metrics.jsonl, wandb offline), reward-curve PNG
- checkpoints (HF folder + optimizer + RNG + data position) every `trainer.checkpoint_every` iterations and at
  the end; `--resume` continues from the newest, keeps the stage's starting model as the KL reference and
  re-pushes the weights to the rollout pool
Flags: every field of `vital_ray.config.DGRPOJobConfig` as a dotted override, e.g. `rollout.group_size=8`.
"""

from __future__ import annotations

import argparse
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
from vital_ray.training import checkpoint


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


def driver_rss_mb() -> float:
    """Resident memory of this process: stays flat when no pixels pass through the driver."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def checkpoint_state(iteration: int, sampler: PromptSampler, init_model: str) -> dict:
    return {"step": iteration, "kind": "dgrpo", "sampler": sampler.state_dict(), "init_model": init_model}


def train(cfg: DGRPOJobConfig, init_model: str | None = None) -> str:
    """Run (or resume) one DGRPO stage; returns the final checkpoint (an HF folder)."""
    from actors.learner import LearnerPool
    from pipelines.session import RLSession, init_ray, load_training_records
    from pipelines.sft import check_fresh_or_resume

    out_dir = expand(cfg.trainer.output_dir)
    check_fresh_or_resume(out_dir, cfg.trainer.resume)
    init_ray(cfg)
    init_model = init_model or ensure_model_folder(cfg.model)
    start = checkpoint.latest_checkpoint(out_dir) if cfg.trainer.resume else None
    state = checkpoint.read_state(start) if start else {"step": 0, "init_model": init_model}
    records, errors = load_training_records(cfg)
    sampler = (PromptSampler.from_state(records, state["sampler"]) if start
               else PromptSampler(records, seed=cfg.data.shuffle_seed))
    model_path = start or init_model
    session = RLSession(cfg, model_path)
    # the KL reference stays the stage's starting model, also after a resume
    learner = LearnerPool(model_path, cfg.learner, cfg.algo, cfg.model, ref_path=state["init_model"])
    logger = MetricsLogger(out_dir, cfg.trainer.wandb_project, to_dict(cfg), resume_step=state["step"] if start else None)
    if errors and not start:  # rejected at load (file, index, field); iteration 0 = before training
        logger.row("skipped_records.jsonl", 0, {"errors": errors})
    telemetry = Telemetry("dgrpo")
    session.tools.telemetry = telemetry
    timer = PhaseTimer(on_phase=telemetry.set_phase)
    print(f"vital_ray DGRPO: {len(records)} records ({len(errors)} rejected), model {model_path}, "
          f"{cfg.trainer.iterations} iterations x {cfg.trainer.prompts_per_iter} prompts x "
          f"{cfg.rollout.group_size} rollouts" + (f", resuming after iteration {state['step']}" if start else ""),
          flush=True)
    if start:  # optimizer, RNG, data position; then the rollout pool gets exactly the learner's weights
        learner.load_checkpoint(start)
        session.sync_weights(learner)
    bar = tqdm(range(state["step"] + 1, cfg.trainer.iterations + 1), desc="DGRPO", disable=not cfg.trainer.progress)
    for it in bar:
        t0 = time.perf_counter()
        prompts = sampler.next(cfg.trainer.prompts_per_iter)
        logger.row("data_order.jsonl", it, {"records": [r.id for r in prompts]})
        with timer("rollout"):
            trajs, m = session.rollout(prompts)
        if session.skipped:
            logger.row("skipped_records.jsonl", it, {"errors": session.skipped})
        with timer("reward"):
            session.score(trajs)
        with timer("advantage"):
            m |= assign_advantages(trajs, cfg.algo)
        with timer("train"):
            m |= {f"train/{k}": v for k, v in learner.policy_update([sample_from_trajectory(t) for t in trajs]).items()}
        with timer("sync"):
            m |= session.sync_weights(learner)
        if it == cfg.trainer.iterations or (cfg.trainer.checkpoint_every and it % cfg.trainer.checkpoint_every == 0):
            with timer("checkpoint"):
                learner.save_checkpoint(checkpoint.checkpoint_dir(out_dir, it),
                                        checkpoint_state(it, sampler, state["init_model"]))
                checkpoint.prune(out_dir, cfg.trainer.keep_checkpoints)
        m |= trajectory_metrics(trajs) | timer.pop()
        m["time/iteration"] = time.perf_counter() - t0
        m["sys/driver_rss_mb"] = driver_rss_mb()
        logger.log(it, m)
        logger.samples(it, trajs)
        telemetry.iteration(it, m)
        bar.write(console_line(it, m))
        bar.set_postfix(reward=f"{m.get('reward/mean', 0):.2f}")
    final = checkpoint.latest_checkpoint(out_dir)
    png = logger.plot()
    logger.close()
    session.shutdown()
    learner.shutdown()
    print(f"checkpoint: {final}\nreward curve: {png or 'not drawn (pip install vital_ray[plots])'}\n"
          f"metrics: {logger.path}", flush=True)
    return final


def parse_cli(argv=None, doc: str | None = None) -> tuple[DGRPOJobConfig, str | None, list[str]]:
    """-> (config, YAML path, overrides) of a driver's command line."""
    ap = argparse.ArgumentParser(description=doc or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="YAML file (defaults: vital_ray.config.DGRPOJobConfig)")
    ap.add_argument("--resume", action="store_true", help="continue from the newest checkpoint (trainer.resume=true)")
    ap.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rollout.group_size=8")
    args = ap.parse_args(argv)
    overrides = args.overrides + ["trainer.resume=true"] * args.resume
    return load_config(DGRPOJobConfig, args.config, overrides), args.config, overrides


def run_cli(train_fn, argv=None) -> int:
    """Shared `main` of the drivers: config, output-dir and bad-data problems exit 2 with one line, no traceback;
    a lost learner step exits 3 (rerun with --resume). `train_fn(cfg, config_path, overrides)`."""
    from actors.learner import LearnerFailure
    from vital_ray.data.records import RecordError

    try:
        train_fn(*parse_cli(argv, sys.modules[train_fn.__module__].__doc__))
    except (ConfigError, FileExistsError, RecordError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except LearnerFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


def main(argv=None) -> int:
    return run_cli(lambda cfg, *_: train(cfg), argv)


if __name__ == "__main__":
    sys.exit(main())
