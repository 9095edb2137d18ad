"""algo.entropy_coef: the policy update adds -coef * entropy, so with zero advantages it alone moves the model."""

import numpy as np

from vital_ray.batch import TrainSample
from vital_ray.config import AlgoConfig, LearnerConfig


def _zero_advantage_samples(tiny_model_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    out = []
    for i in range(2):
        ids = tok.encode(f"<|im_start|>user\nq{i}<|im_end|>\n<|im_start|>assistant\n<answer>{'AB'[i]}</answer>")
        mask = np.zeros(len(ids), np.int8)
        mask[-6:] = 1
        out.append(TrainSample(np.asarray(ids), mask, np.zeros(len(ids), np.float32), advantage=0.0))
    return out


def _entropies(coef, tiny_model_path, steps=4):
    """Policy updates after a few SFT steps: a random model's entropy is already near log(vocab), SFT lowers it."""
    from vital_ray.training.learner import FSDPLearner

    lrn = FSDPLearner(tiny_model_path, LearnerConfig(lr=3e-3), AlgoConfig(kl_coef=0.0, entropy_coef=coef))
    samples = _zero_advantage_samples(tiny_model_path)
    for _ in range(6):
        lrn.sft_update(samples)
    return [lrn.policy_update(samples) for _ in range(steps)]


def test_entropy_bonus_raises_entropy_and_is_off_at_zero(one_rank, tiny_model_path):
    with_bonus = _entropies(1.0, tiny_model_path)
    assert all(m["grad_norm"] > 0 for m in with_bonus)  # zero advantages: the entropy term is the only gradient
    assert with_bonus[-1]["entropy"] > with_bonus[0]["entropy"]
    without = _entropies(0.0, tiny_model_path)
    assert all(m["grad_norm"] == 0 and "entropy" not in m for m in without)
