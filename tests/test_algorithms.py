"""GRPO/DGRPO advantages and PPO/KL losses against hand-computed values."""

import math

import pytest
import torch

from vital_ray.algorithms.advantages import compute_advantages, dgrpo_advantages, grpo_advantages
from vital_ray.algorithms.losses import kl_k3, masked_mean, policy_loss, token_logprobs
from vital_ray.config import AlgoConfig


def test_grpo_matches_hand_values():
    r = torch.tensor([0.0, 1.0, 2.0, 3.0])
    g = torch.zeros(4, dtype=torch.long)
    sigma = math.sqrt(((1.5**2) * 2 + (0.5**2) * 2) / 3)  # unbiased: 1.29099
    expected = torch.tensor([-1.5, -0.5, 0.5, 1.5]) / (sigma + 1e-6)
    assert torch.allclose(grpo_advantages(r, g), expected, atol=1e-6)


def test_dgrpo_weight_follows_code_formula():
    # group 0: mean 1.5 -> w = 0.5 + 0.5*clip(0.5) = 0.75; group 1: mean 2.5 -> 0.5; group 2: mean 0.5 -> 1.0
    r = torch.tensor([0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 0.0, 1.0])
    g = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    adv, w = dgrpo_advantages(r, g, threshold=2.0)
    assert w.tolist() == pytest.approx([0.75] * 4 + [0.5] * 2 + [1.0] * 2)
    assert torch.allclose(adv, w * grpo_advantages(r, g), atol=1e-7)
    assert adv[:4].tolist() == pytest.approx([-0.87142, -0.29047, 0.29047, 0.87142], abs=1e-4)


def test_zero_variance_and_single_sample_groups():
    r = torch.tensor([1.0, 1.0, 1.0, 5.0])
    g = torch.tensor([0, 0, 0, 1])
    adv = grpo_advantages(r, g)
    assert adv[:3].abs().max() == 0  # no signal from a group that all scored the same
    assert adv[3] == pytest.approx(5.0 / (1 + 1e-6))  # single sample: mean 0, std 1 (verl convention)


def test_compute_advantages_dispatch():
    r, g = torch.tensor([0.0, 2.0]), torch.tensor([0, 0])
    a_grpo, w = compute_advantages(r, g, AlgoConfig(estimator="grpo"))
    a_dgrpo, w2 = compute_advantages(r, g, AlgoConfig(estimator="dgrpo"))
    assert w.tolist() == [1.0, 1.0] and w2.tolist() == [1.0, 1.0]  # mean 1 -> full weight
    assert torch.allclose(a_grpo, a_dgrpo)


def test_policy_loss_ratio_one_is_minus_mean_advantage():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    adv = torch.tensor([1.0, -2.0, 4.0])
    mask = torch.tensor([1.0, 1.0, 0.0])
    loss, m = policy_loss(logp, logp, adv, mask)
    assert loss.item() == pytest.approx(-(1.0 - 2.0) / 2)
    assert m["clip_frac"].item() == 0


def test_policy_loss_clipping_by_hand():
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 0.5, 10.0]))
    adv = torch.tensor([1.0, -1.0, -1.0])
    ones = torch.ones(3)
    # rho=1.5, A>0: clipped to 1.2 -> -1.2 ; rho=0.5, A<0: max(0.5, 0.8) -> 0.8 ; rho=10, A<0: dual clip -> 3
    for i, want in enumerate([-1.2, 0.8, 3.0]):
        sel = torch.zeros(3)
        sel[i] = 1
        loss, _ = policy_loss(logp, old, adv, sel)
        assert loss.item() == pytest.approx(want, rel=1e-5)
    loss, m = policy_loss(logp, old, adv, ones)
    assert loss.item() == pytest.approx((-1.2 + 0.8 + 3.0) / 3, rel=1e-5)
    assert m["dual_clip_frac"].item() == pytest.approx(1 / 3)


def test_k3_kl():
    a = torch.tensor([-1.0, -2.0])
    assert kl_k3(a, a, torch.ones(2)).item() == 0
    d = 0.5  # ref - logp
    want = math.exp(d) - d - 1
    assert kl_k3(torch.tensor([-1.5]), torch.tensor([-1.0]), torch.ones(1)).item() == pytest.approx(want)


def test_masked_mean_and_token_logprobs():
    assert masked_mean(torch.tensor([1.0, 100.0, 3.0]), torch.tensor([1, 0, 1])).item() == 2.0
    logits = torch.randn(4, 11)
    labels = torch.tensor([0, 5, 10, 3])
    ref = torch.log_softmax(logits, -1)[torch.arange(4), labels]
    assert torch.allclose(token_logprobs(logits, labels), ref)
