"""The recipe on Ray: SFT on Ray Train learns, a SIGKILLed stage resumes where it stopped (also at an epoch
boundary), a recipe resumes at a stage boundary, DGRPO resumes with the weights re-pushed to the rollout pool."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from vital_ray.config import DGRPOJobConfig, load_config
from vital_ray.data.sampler import PromptSampler
from vital_ray.training import checkpoint

pytestmark = pytest.mark.ray
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "recipe_tiny.yaml")
SMALL = ["data.num_videos=2", "data.video_duration_s=60", "data.records_per_video=4", "rollout.group_size=2",
         "rollout.max_tokens_per_turn=24", "rollout.max_total_tokens=160", "ray.num_cpus=4"]


def _rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _driver(args, out_dir):
    env = dict(os.environ, PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0")
    return subprocess.Popen([sys.executable, "-m", "pipelines.sft", "--config", TINY, *SMALL,
                             f"trainer.output_dir={out_dir}", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sft_sigkill_then_resume_continues_steps_and_data_order(tmp_path):
    """6 tool traces (2 of the 8 records have no span for one), batch 3: an epoch is 2 steps, so every checkpoint
    (each 4 steps) sits on an epoch boundary, where resuming elsewhere has silently run 0 steps."""
    out = str(tmp_path / "sft")
    args = ["sft.steps=16", "sft.batch_size=3", "sft.checkpoint_every=4", "sft.lr=1e-2"]
    first = _driver(args, out)
    deadline = time.time() + 300
    while checkpoint.latest_checkpoint(out) is None:
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
    first.wait()
    killed = checkpoint.read_state(checkpoint.latest_checkpoint(out))
    assert killed["step"] < 16 and killed["sampler"]["position"] == 0  # an epoch boundary

    again = _driver(args + ["--resume"], out)
    text, _ = again.communicate(timeout=400)
    assert again.returncode == 0, text[-3000:]
    # a worker's print reaches the driver once (Ray Train's print patch would also log it to stderr: twice)
    assert text.count("[sft] step 16/16 ") == 1, text[-3000:]
    assert _driver(args, out).wait(timeout=120) == 2  # not resuming over existing checkpoints is refused

    order = _rows(os.path.join(out, "data_order.jsonl"))
    assert [r["iteration"] for r in order] == list(range(1, 17))  # each step once, none skipped
    with open(os.path.join(out, "sft_samples.json")) as f:
        n = len(json.load(f))
    assert n == 6, "the synthetic data changed: pick a batch size that divides the sample count"
    expected, epochs, batches = PromptSampler(list(range(n)), seed=1), [], []
    for _ in range(16):
        epochs.append(expected.state.epoch)
        batches.append(expected.next(3))
    assert [r["indices"] for r in order] == batches and [r["epoch"] for r in order] == epochs
    state = checkpoint.read_state(checkpoint.latest_checkpoint(out))
    assert state["step"] == 16 and state["sampler"] == expected.state_dict()
    losses = [r["sft_loss"] for r in _rows(os.path.join(out, "metrics.jsonl"))]
    assert len(losses) == 16 and sum(losses[-4:]) < 0.5 * sum(losses[:4])  # SFT on the traces learns


def test_recipe_resumes_at_stage_boundary_and_dgrpo_resume_repushes_weights(ray_local, tmp_path):
    from transformers import AutoModelForImageTextToText

    from actors.learner import LearnerPool
    from pipelines import dgrpo, recipe
    from pipelines.session import RLSession

    root = str(tmp_path / "recipe")
    over = SMALL + [f"trainer.output_dir={root}", "sft.steps=4", "sft.checkpoint_every=0", "trainer.iterations=2",
                    "trainer.prompts_per_iter=2", "trainer.checkpoint_every=1", "learner.num_workers=1",
                    "recipe.stages=[{name: sft_cot, kind: sft, overrides: [sft.tools=false]},"
                    "{name: dgrpo_single, kind: dgrpo, overrides: [rollout.max_turns=0]}]"]
    cfg = load_config(DGRPOJobConfig, TINY, over + ["recipe.only=sft_cot"])
    sft_final = recipe.run(cfg, TINY, over + ["recipe.only=sft_cot"])  # the "crash" lands on the boundary
    assert recipe.finished(os.path.join(root, "sft_cot")) == sft_final
    AutoModelForImageTextToText.from_pretrained(sft_final)  # a plain HF folder
    assert not os.path.exists(os.path.join(root, "dgrpo_single"))

    cfg = load_config(DGRPOJobConfig, TINY, over)
    final = recipe.run(cfg, TINY, over)  # sft_cot is skipped, dgrpo_single starts from its checkpoint
    state = checkpoint.read_state(final)
    assert os.path.realpath(os.path.join(root, "final")) == os.path.realpath(final)
    assert state["kind"] == "dgrpo" and state["step"] == 2 and state["init_model"] == sft_final
    rows = _rows(os.path.join(root, "dgrpo_single", "metrics.jsonl"))
    assert [r["iteration"] for r in rows] == [1, 2]
    assert all(r["rollout/tool_calls_per_traj"] == 0 for r in rows)  # single-turn stage: no tool

    # DGRPO resume: one more iteration from the stage's newest checkpoint, same data stream
    stage = recipe.stage_config(TINY, over + ["trainer.iterations=3"], cfg.recipe.stages[1], root)
    resumed = dgrpo.train(stage, init_model=sft_final)
    assert checkpoint.read_state(resumed)["step"] == 3
    order = _rows(os.path.join(root, "dgrpo_single", "data_order.jsonl"))
    assert [r["iteration"] for r in order] == [1, 2, 3]
    recs, _ = __import__("pipelines.session", fromlist=["x"]).load_training_records(stage)
    sampler = PromptSampler(recs, seed=stage.data.shuffle_seed)
    assert [r["records"] for r in order] == [[x.id for x in sampler.next(2)] for _ in range(3)]

    # what a resume re-pushes: a rollout pool started from other weights serves the checkpoint's after a sync
    import ray

    session = RLSession(stage, sft_final)
    learner = LearnerPool(resumed, stage.learner, stage.algo, stage.model, ref_path=sft_final)
    learner.load_checkpoint(resumed)
    served = lambda: ray.get(session.gen_pool.workers[0].weights_checksum.remote())  # noqa: E731
    want = {k: float(v.double().sum())
            for k, v in AutoModelForImageTextToText.from_pretrained(resumed).state_dict().items()}
    key = "model.language_model.layers.0.mlp.up_proj.weight"
    assert served()[key] != pytest.approx(want[key], rel=1e-9)
    session.sync_weights(learner)
    got = served()
    assert all(got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-6) for k in want)
    session.shutdown()
    learner.shutdown()
