"""Checkpoints continue exactly: optimizer state, step and RNG restored; the model folder loads with plain HF."""

import os

import numpy as np
import torch

from vital_ray.batch import TrainSample
from vital_ray.config import AlgoConfig, LearnerConfig
from vital_ray.training import checkpoint


def _samples(tiny_model_path, n=4):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    rng = np.random.default_rng(1)
    from vital_ray.rollout.trajectory import VideoRef

    clip = VideoRef(rng.integers(0, 255, (2, 56, 56, 3), dtype=np.uint8), (2, 56, 56, 3), 2.0, 0.0, 1.0)
    out = []
    for i in range(n):
        ids = tok.encode("<|im_start|>user\n<|vision_start|>") + [tok.convert_tokens_to_ids("<|video_pad|>")] * 4 \
            + tok.encode(f"<|vision_end|>q{i}<|im_end|>\n<|im_start|>assistant\n<answer>{'ABCD'[i]}</answer>")
        mask = np.zeros(len(ids), np.int8)
        mask[-6:] = 1
        out.append(TrainSample(np.asarray(ids), mask, np.zeros(len(ids), np.float32), [clip]))
    return out


def _learner(path, ref=None, **learner):
    from vital_ray.training.learner import FSDPLearner

    return FSDPLearner(path, LearnerConfig(lr=3e-3, **learner), AlgoConfig(kl_coef=0.01), ref_path=ref)


def test_resume_reproduces_the_uninterrupted_run(one_rank, tiny_model_path, tmp_path):
    samples = _samples(tiny_model_path)
    batches = [samples[:2], samples[2:], samples[1:3], samples[::2]]
    torch.manual_seed(0)
    full = _learner(tiny_model_path)
    losses = [full.sft_update(b)["sft_loss"] for b in batches]

    torch.manual_seed(0)
    first = _learner(tiny_model_path)
    head = [first.sft_update(b)["sft_loss"] for b in batches[:2]]
    path = checkpoint.save(first, checkpoint.checkpoint_dir(str(tmp_path), 2), {"step": 2, "stage": "t"})
    marker = float(torch.rand(1))  # the RNG stream right after the save
    assert checkpoint.latest_checkpoint(str(tmp_path)) == path
    assert not os.path.exists(path + ".tmp")

    resumed = _learner(path, ref=tiny_model_path)
    state = checkpoint.load(resumed, path)
    assert state["step"] == 2 and resumed.step == 2
    assert float(torch.rand(1)) == marker  # RNG restored
    tail = [resumed.sft_update(b)["sft_loss"] for b in batches[2:]]
    np.testing.assert_allclose(head + tail, losses, rtol=1e-5, atol=1e-6)

    # without the optimizer state (fresh Adam moments) the continuation differs: the test can fail
    fresh = _learner(path)
    assert abs(fresh.sft_update(batches[2])["sft_loss"] - losses[2]) < 1e-6  # same weights...
    assert abs(fresh.sft_update(batches[3])["sft_loss"] - losses[3]) > 1e-6  # ...different optimizer


def test_checkpoint_is_a_plain_hf_folder(one_rank, tiny_model_path, tmp_path):
    from transformers import AutoModelForImageTextToText

    learner = _learner(tiny_model_path)
    learner.sft_update(_samples(tiny_model_path)[:2])
    path = checkpoint.save(learner, checkpoint.checkpoint_dir(str(tmp_path), 1), {"step": 1})
    model = AutoModelForImageTextToText.from_pretrained(path)
    ours = learner.full_state()
    theirs = model.state_dict()
    key = "model.language_model.layers.0.mlp.up_proj.weight"
    assert torch.equal(theirs[key], ours[key])
    assert os.path.exists(os.path.join(path, "model.safetensors"))  # fits in one shard: no index


def test_large_checkpoints_are_sharded_with_an_index_that_loads(one_rank, tiny_model_path, tmp_path):
    import json

    from transformers import AutoModelForImageTextToText

    learner = _learner(tiny_model_path, save_shard_mb=1)
    learner.sft_update(_samples(tiny_model_path)[:2])
    path = checkpoint.save(learner, checkpoint.checkpoint_dir(str(tmp_path), 1), {"step": 1})
    index = json.load(open(os.path.join(path, "model.safetensors.index.json")))
    shards = sorted(set(index["weight_map"].values()))
    per_shard = {f: [k for k, v in index["weight_map"].items() if v == f] for f in shards}
    assert len(shards) > 1
    for f, keys in per_shard.items():  # a tensor larger than the limit (the embedding) gets a shard of its own
        assert len(keys) == 1 or os.path.getsize(os.path.join(path, f)) <= 2**20 + 2**16, (f, keys)
    assert not os.path.exists(os.path.join(path, "model.safetensors"))
    ours, theirs = learner.full_state(), AutoModelForImageTextToText.from_pretrained(path).state_dict()
    assert set(index["weight_map"]) == set(ours) and all(torch.equal(theirs[k], v) for k, v in ours.items())
    resumed = _learner(path, ref=tiny_model_path)  # the learner itself reads the shards back
    assert all(torch.equal(resumed.full_state()[k], v) for k, v in ours.items())


def test_latest_checkpoint_ignores_incomplete_saves(tmp_path):
    out = str(tmp_path)
    for step, complete in ((2, True), (4, True), (6, False)):
        d = checkpoint.checkpoint_dir(out, step)
        os.makedirs(d)
        if complete:
            with open(os.path.join(d, checkpoint.STATE_FILE), "w") as f:
                f.write(f'{{"step": {step}}}')
    assert checkpoint.latest_checkpoint(out).endswith("step_000004")
    checkpoint.prune(out, keep=1)
    assert not os.path.exists(checkpoint.checkpoint_dir(out, 2))
    assert checkpoint.latest_checkpoint(str(tmp_path / "none")) is None
