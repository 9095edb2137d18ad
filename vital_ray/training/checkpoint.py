"""Training checkpoints: an HF model folder plus everything needed to continue exactly. No Ray in here.

    <dir>/config.json, model*.safetensors (+ index), tokenizer...   plain `from_pretrained` / vLLM load it
    <dir>/optim/                                        optimizer state, torch.distributed.checkpoint (sharded)
    <dir>/rng/rank<r>.pt                                python / numpy / torch RNG of each rank
    <dir>/trainer_state.json                            step, data position, stage, init model; written last

A checkpoint is complete only once `trainer_state.json` exists: it is written after everything else, inside a
`.tmp` folder that is renamed into place, so a run killed mid-save leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil

import numpy as np
import torch
import torch.distributed as dist

STATE_FILE = "trainer_state.json"


def checkpoint_dir(out_dir: str, step: int) -> str:
    return os.path.join(out_dir, "checkpoints", f"step_{step:06d}")


def latest_checkpoint(out_dir: str) -> str | None:
    """The newest complete checkpoint under `out_dir/checkpoints`, or None."""
    done = glob.glob(os.path.join(out_dir, "checkpoints", "step_*", STATE_FILE))
    return os.path.dirname(max(done, key=lambda p: read_state(os.path.dirname(p))["step"])) if done else None


def read_state(path: str) -> dict:
    with open(os.path.join(path, STATE_FILE)) as f:
        return json.load(f)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(learner, path: str, trainer_state: dict) -> str:
    """Collective: every rank calls. Model (rank 0, HF format), optimizer shards and RNG (all ranks), then the
    trainer state (rank 0) and an atomic rename."""
    import torch.distributed.checkpoint as dcp

    rank = dist.get_rank()
    tmp = path.rstrip("/") + ".tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "rng"))
    dist.barrier()
    learner.save_hf(tmp, replace=False)
    dcp.save({"optim": learner.optimizer_state()}, checkpoint_id=os.path.join(tmp, "optim"))
    torch.save(_rng_state(), os.path.join(tmp, "rng", f"rank{rank}.pt"))
    dist.barrier()
    if rank == 0:
        with open(os.path.join(tmp, STATE_FILE), "w") as f:
            json.dump({**trainer_state, "optimizer_step": learner.step, "world_size": dist.get_world_size()}, f)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    dist.barrier()
    return path


def load(learner, path: str) -> dict:
    """Collective. The model weights were loaded from `path` when the learner was built; this restores the
    optimizer (resharded if the world size changed), each rank's RNG (when the world size matches) and returns
    the trainer state."""
    import torch.distributed.checkpoint as dcp

    state = read_state(path)
    optim = learner.optimizer_state()
    dcp.load({"optim": optim}, checkpoint_id=os.path.join(path, "optim"))
    learner.load_optimizer_state(optim)
    learner.step = int(state.get("optimizer_step", 0))
    rng = os.path.join(path, "rng", f"rank{dist.get_rank()}.pt")
    if state.get("world_size") == dist.get_world_size() and os.path.exists(rng):
        _set_rng_state(torch.load(rng, weights_only=False))
    return state


def prune(out_dir: str, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints (0 keeps all)."""
    if keep <= 0:
        return
    done = sorted(glob.glob(os.path.join(out_dir, "checkpoints", "step_*", STATE_FILE)),
                  key=lambda p: read_state(os.path.dirname(p))["step"])
    for p in done[:-keep]:
        shutil.rmtree(os.path.dirname(p), ignore_errors=True)
