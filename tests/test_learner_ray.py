"""FSDP2 across two gloo ranks in Ray actors: the same log-probs and the same update as one rank."""

import numpy as np
import pytest
import ray

from actors.learner import LearnerPool
from vital_ray.batch import TrainSample, shard_balanced
from vital_ray.config import AlgoConfig, LearnerConfig, ModelConfig
from vital_ray.rollout.trajectory import VideoRef

pytestmark = pytest.mark.ray


def _samples(tiny_model_path, n=3):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    rng = np.random.default_rng(0)
    frames = ray.put(rng.integers(0, 255, (2, 56, 56, 3), dtype=np.uint8))
    clip = VideoRef(frames, (2, 56, 56, 3), 2.0, 0.0, 1.0)
    out = []
    for i in range(n):
        ids = tok.encode(f"<|im_start|>user\n<|vision_start|>") + [tok.convert_tokens_to_ids("<|video_pad|>")] * 4 \
            + tok.encode(f"<|vision_end|>question {i}<|im_end|>\n<|im_start|>assistant\n<answer>{'ABCD'[i]}</answer>")
        mask = np.zeros(len(ids), np.int8)
        mask[-6:] = 1
        out.append(TrainSample(np.asarray(ids), mask, np.zeros(len(ids), np.float32), [clip], advantage=1.0 - i % 3))
    return out


def test_shard_balanced_pads_with_zero_weight_fillers():
    s = [TrainSample(np.zeros(k + 1, np.int64), np.ones(k + 1, np.int8), np.zeros(k + 1, np.float32)) for k in range(3)]
    shards = shard_balanced(s, 2)
    assert [len(x) for x in shards] == [2, 2]
    assert sorted(x.weight for sh in shards for x in sh) == [0.0, 1.0, 1.0, 1.0]


def test_two_rank_fsdp_matches_one_rank_and_trains(ray_local, tiny_model_path):
    algo = AlgoConfig(kl_coef=0.01)
    model = ModelConfig()
    one = LearnerPool(tiny_model_path, LearnerConfig(num_workers=1, lr=1e-3), algo, model)
    two = LearnerPool(tiny_model_path, LearnerConfig(num_workers=2, lr=1e-3), algo, model)
    samples = _samples(tiny_model_path)
    lp1, lp2 = one.logprobs(samples), two.logprobs(samples)
    for a, b in zip(lp1, lp2):
        assert len(a) == 6 and np.abs(a - b).max() < 1e-5
    # an even split (4 samples of equal length): the 2-rank update is the 1-rank update. (With a filler it is
    # not: each rank's micro-batch is a token mean, so the rank holding the filler weighs its real tokens more.)
    even = _samples(tiny_model_path, 4)
    m1, m2 = one.policy_update(even), two.policy_update(even)
    assert m2["grad_norm"] == pytest.approx(m1["grad_norm"], rel=1e-4) and m2["tokens"] == m1["tokens"] == 24
    for a, b in zip(one.logprobs(even), two.logprobs(even)):
        assert np.abs(a - b).max() < 1e-4
    before = two.logprobs(samples)
    m = two.policy_update(samples)  # 3 samples on 2 ranks: a filler keeps the collectives aligned
    assert m["grad_norm"] > 0 and m["tokens"] == 18
    entries, refs, _ = two.push_weights()
    assert sum(e.nbytes for e in entries) > 1e6
    after = two.logprobs(samples)
    assert after[0].mean() > before[0].mean()  # positive advantage: its answer became more likely
    one.shutdown()
    two.shutdown()
