"""Supervised fine-tuning on Ray Train (VITAL stages 1 and 3), with the RL learner's own model kit and FSDP2.

    python -m pipelines.sft --config configs/demo.yaml sft.tools=true sft.steps=150 [trainer.resume=true]

Features
- `TorchTrainer` workers each drive an `FSDPLearner` (the class the DGRPO learner pool uses): one model kit,
  one FSDP2 wrapper, gloo on CPU and NCCL on GPU
- multimodal, multi-turn targets built from VITAL records: tool traces whose tool turn carries the real clip
  frames and the "Video clip from ..." text (`sft.tools=true`, stage 3), or text CoT (`sft.tools=false`,
  stage 1); loss on assistant tokens only. Frames reach the workers as ObjectRefs, never inline
- epoch-shuffled data order with an exact position; checkpoints (HF folder + optimizer + RNG + data position)
  every `sft.checkpoint_every` steps and at the end; `trainer.resume=true` continues from the newest one,
  at an epoch boundary too, and Ray Train restarts a failed worker group from it (`sft.max_failures`)
Flags: every field of `vital_ray.config.DGRPOJobConfig`, e.g. `sft.lr=1e-5 sft.batch_size=16 learner.num_workers=2`.
"""

from __future__ import annotations

import json
import os
import sys

import ray

from vital_ray.batch import TrainSample, sample_from_trajectory, shard_balanced
from vital_ray.config import AlgoConfig, DGRPOJobConfig, expand
from vital_ray.data.sampler import PromptSampler
from vital_ray.training import checkpoint


def build_samples(cfg: DGRPOJobConfig, model_path: str, records: list) -> tuple[list[TrainSample], list[str]]:
    """Teacher trajectories (clip frames fetched by the tool pool) -> (train samples holding frame refs, their
    ids). Records with no usable target (e.g. no span for a tool trace) or no readable video are dropped."""
    from pipelines.session import ToolSession
    from vital_ray.telemetry import Telemetry

    session = ToolSession(cfg, model_path)
    session.tools.telemetry = telemetry = Telemetry("sft")
    telemetry.set_phase("tools")  # the dashboard's phase gauge: clip decoding for the teacher traces
    try:
        trajs = session.teacher_trajectories(records * cfg.sft.traces_per_record, seed=cfg.trainer.seed,
                                             tools=cfg.sft.tools)
    finally:
        session.shutdown()  # the frames stay in the object store: this driver owns them
        telemetry.set_phase("sft")
    if not trajs:
        raise ValueError("no SFT targets could be built from the records (no spans/answers, or no readable video)")
    return [sample_from_trajectory(t) for t in trajs], [t.sample_id for t in trajs]


def total_steps(cfg: DGRPOJobConfig, num_samples: int) -> int:
    return cfg.sft.steps or cfg.sft.epochs * -(-num_samples // cfg.sft.batch_size)


def train_loop(config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import torch.distributed as dist

    from actors.common import limit_threads
    from vital_ray.metrics import MetricsLogger
    from vital_ray.training import fsdp
    from vital_ray.training.learner import FSDPLearner

    cfg: DGRPOJobConfig = config["cfg"]
    out_dir, init_model = config["out_dir"], config["init_model"]
    limit_threads(max(1, int(cfg.learner.num_cpus_per_worker)))
    rank, world = dist.get_rank(), dist.get_world_size()
    samples: list[TrainSample] = ray.get(config["samples"])
    resume = config["resume"] or ray.train.get_checkpoint() is not None  # a Ray Train restart after a failure
    start = checkpoint.latest_checkpoint(out_dir) if resume else None
    learner = FSDPLearner(start or init_model, cfg.learner, AlgoConfig(kl_coef=0.0), cfg.model.dtype,
                          freeze_vision=not cfg.sft.train_vision, resolve=ray.get,
                          device=ray.train.torch.get_device())
    learner.set_lr(cfg.sft.lr)
    state = checkpoint.load(learner, start) if start else {"step": 0}
    order = (PromptSampler.from_state(list(range(len(samples))), state["sampler"]) if start
             else PromptSampler(list(range(len(samples))), seed=cfg.data.shuffle_seed))
    logger = MetricsLogger(out_dir, cfg.trainer.wandb_project, resume_step=state["step"] if start else None) \
        if rank == 0 else None
    steps = config["steps"]
    bar = None
    if logger and config["bar"]:  # tqdm_ray: a worker's bar is drawn by the driver, not interleaved logs
        from ray.experimental import tqdm_ray

        bar = tqdm_ray.tqdm(total=steps - state["step"], desc="SFT")
    for step in range(state["step"] + 1, steps + 1):
        epoch = order.state.epoch
        idx = order.next(cfg.sft.batch_size)
        m = fsdp.mean_over_ranks(learner.sft_update(shard_balanced([samples[i] for i in idx], world)[rank]))
        if bar is not None:
            bar.update(1)
        if logger:
            logger.log(step, m | {"epoch": epoch})
            logger.row("data_order.jsonl", step, {"epoch": epoch, "indices": idx})
            if step % 10 == 0 or step == steps or bar is None and step == state["step"] + 1:
                print(f"[sft] step {step}/{steps} loss {m['sft_loss']:.4f} tokens {m['tokens']:.0f}", flush=True)
        if step == steps or (cfg.sft.checkpoint_every and step % cfg.sft.checkpoint_every == 0):
            path = checkpoint.save(learner, checkpoint.checkpoint_dir(out_dir, step),
                                   {"step": step, "kind": "sft", "sampler": order.state_dict(),
                                    "init_model": init_model})
            checkpoint.prune(out_dir, cfg.trainer.keep_checkpoints)
            ray.train.report(m | {"step": step}, checkpoint=ray.train.Checkpoint(path) if rank == 0 else None,
                             checkpoint_upload_mode=ray.train.CheckpointUploadMode.NO_UPLOAD)
    if bar is not None:
        bar.close()
    if logger:
        logger.close()


def train(cfg: DGRPOJobConfig, init_model: str | None = None) -> str:
    """Run (or resume) one SFT stage; returns the final checkpoint (an HF folder)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from pipelines.session import init_ray, load_training_records
    from vital_ray.models import ensure_model_folder

    out_dir = expand(cfg.trainer.output_dir)
    check_fresh_or_resume(out_dir, cfg.trainer.resume)
    init_ray(cfg)
    init_model = init_model or ensure_model_folder(cfg.model)
    records, errors = load_training_records(cfg)
    samples, ids = build_samples(cfg, init_model, records)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "sft_samples.json"), "w") as f:  # data_order.jsonl indexes into this
        json.dump(ids, f)
    steps = total_steps(cfg, len(samples))
    print(f"vital_ray SFT ({'tool traces' if cfg.sft.tools else 'text CoT'}): {len(samples)} samples from "
          f"{len(records)} records ({len(errors)} rejected at load), {steps} steps x {cfg.sft.batch_size}, "
          f"{cfg.learner.num_workers} worker(s), from {init_model}", flush=True)
    gpu = cfg.learner.num_gpus_per_worker > 0
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"cfg": cfg, "samples": ray.put(samples), "out_dir": out_dir, "init_model": init_model,
                           "steps": steps, "resume": cfg.trainer.resume,
                           # the bar only where someone watches: in a log file (CI, a submitted job) tqdm_ray redraws
                           # every bar around each forwarded log line, so each step appeared twice
                           "bar": cfg.trainer.progress and sys.stdout.isatty()},
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.learner.num_workers, use_gpu=gpu,
                                     resources_per_worker={"CPU": cfg.learner.num_cpus_per_worker}),
        run_config=RunConfig(name=os.path.basename(out_dir), storage_path=os.path.dirname(out_dir),
                             failure_config=FailureConfig(max_failures=cfg.sft.max_failures)),
    )
    trainer.fit()
    final = checkpoint.latest_checkpoint(out_dir)
    if final is None or checkpoint.read_state(final)["step"] != steps:
        raise RuntimeError(f"SFT ended without its final checkpoint (step {steps}) in {out_dir}")
    print(f"checkpoint: {final}", flush=True)
    return final


def check_fresh_or_resume(out_dir: str, resume: bool) -> None:
    """Never train over an existing run by accident: its checkpoints would be mixed with the new ones."""
    found = checkpoint.latest_checkpoint(out_dir)
    if found and not resume:
        raise FileExistsError(f"{out_dir} already holds checkpoints (newest: {os.path.basename(found)}); pass "
                              "trainer.resume=true to continue it, or choose another trainer.output_dir")


def main(argv=None) -> int:
    from pipelines.dgrpo import run_cli

    return run_cli(lambda cfg, *_: train(cfg), argv)


if __name__ == "__main__":
    sys.exit(main())
