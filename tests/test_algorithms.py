"""GRPO/DGRPO advantages and PPO/KL/entropy losses against hand-computed values."""

import math

import pytest
import torch

from vital_ray.algorithms import losses
from vital_ray.algorithms.advantages import compute_advantages, dgrpo_advantages, grpo_advantages
from vital_ray.algorithms.losses import (
    broadcast_advantages, entropy_from_logits, kl_k3, masked_mean, policy_loss, token_logprobs, total_loss,
)
from vital_ray.config import AlgoConfig

SIGMA_0123 = math.sqrt((1.5 ** 2 * 2 + 0.5 ** 2 * 2) / 3)  # unbiased std of [0, 1, 2, 3] = 1.29099


# -- advantages -----------------------------------------------------------------------------------------------

def test_grpo_matches_hand_values():
    r = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert SIGMA_0123 == pytest.approx(1.29099, abs=1e-5)
    expected = torch.tensor([-1.5, -0.5, 0.5, 1.5]) / (SIGMA_0123 + 1e-6)
    assert torch.allclose(grpo_advantages(r, torch.zeros(4, dtype=torch.long)), expected, atol=1e-6)


def test_group_ids_need_not_be_contiguous_or_sorted():
    r = torch.tensor([0.0, 5.0, 1.0, 7.0])
    g = torch.tensor([9, 4, 9, 4])
    # two values a, b: mean +- |a-b|/2, unbiased std |a-b|/sqrt(2), so A = +-(|a-b|/2) / (|a-b|/sqrt(2) + eps)
    s9, s4 = 1 / math.sqrt(2), 2 / math.sqrt(2)
    want = torch.tensor([-0.5 / (s9 + 1e-6), -1.0 / (s4 + 1e-6), 0.5 / (s9 + 1e-6), 1.0 / (s4 + 1e-6)])
    assert torch.allclose(grpo_advantages(r, g), want, atol=1e-6)


def test_dgrpo_weight_follows_code_formula():
    # group 0: mean 1.5 -> w 0.75; group 1: mean 2.5 (>= 2) -> 0.5; group 2: mean 0.5 (<= 1) -> 1.0;
    # group 3: mean exactly 1 -> 1.0; group 4: mean exactly 2 -> 0.5
    r = torch.tensor([0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 0.0, 1.0, 0.5, 1.5, 1.0, 3.0])
    g = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    adv, w = dgrpo_advantages(r, g, threshold=2.0)
    assert w.tolist() == pytest.approx([0.75] * 4 + [0.5] * 2 + [1.0] * 2 + [1.0] * 2 + [0.5] * 2)
    assert torch.allclose(adv, w * grpo_advantages(r, g), atol=1e-7)
    assert adv[:4].tolist() == pytest.approx([0.75 * x / (SIGMA_0123 + 1e-6) for x in (-1.5, -0.5, 0.5, 1.5)])
    assert adv[:4].tolist() == pytest.approx([-0.87142, -0.29047, 0.29047, 0.87142], abs=1e-5)


def test_dgrpo_threshold_follows_reward_scale():
    r = torch.tensor([2.0, 3.0])  # mean 2.5: easy at threshold 2, hard at threshold 3.5
    assert dgrpo_advantages(r, torch.zeros(2, dtype=torch.long), threshold=3.5)[1].tolist() == [1.0, 1.0]
    assert dgrpo_advantages(r, torch.zeros(2, dtype=torch.long), threshold=3.0)[1].tolist() == [0.75, 0.75]


def test_zero_variance_and_single_sample_groups():
    r = torch.tensor([1.0, 1.0, 1.0, 5.0])
    g = torch.tensor([0, 0, 0, 1])
    adv = grpo_advantages(r, g)
    assert adv[:3].abs().max() == 0  # no signal from a group that all scored the same
    assert adv[3] == pytest.approx(5.0 / (1 + 1e-6))  # single sample: mean 0, std 1 (verl convention)
    dadv, w = dgrpo_advantages(r, g)
    assert dadv[:3].abs().max() == 0
    assert w[3] == 1.0 and dadv[3] == pytest.approx(5.0 / (1 + 1e-6))  # the code's mean-0 placeholder: w = 1


def test_advantages_keep_dtype_and_handle_empty():
    r = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert grpo_advantages(r, torch.tensor([0, 0])).dtype == torch.float64
    empty = torch.zeros(0)
    assert grpo_advantages(empty, torch.zeros(0, dtype=torch.long)).shape == (0,)
    assert dgrpo_advantages(empty, torch.zeros(0, dtype=torch.long))[1].shape == (0,)
    with pytest.raises(ValueError):
        grpo_advantages(torch.zeros(3), torch.zeros(2, dtype=torch.long))


def test_compute_advantages_dispatch():
    r, g = torch.tensor([0.0, 2.0, 2.0, 3.0]), torch.tensor([0, 0, 1, 1])
    a_grpo, w = compute_advantages(r, g, AlgoConfig(estimator="grpo"))
    a_dgrpo, w2 = compute_advantages(r, g, AlgoConfig(estimator="dgrpo"))
    assert w.tolist() == [1.0] * 4 and w2.tolist() == [1.0, 1.0, 0.5, 0.5]
    assert torch.allclose(a_dgrpo, a_grpo * w2)
    with pytest.raises(ValueError):
        compute_advantages(r, g, AlgoConfig(estimator="ppo"))


# -- losses ---------------------------------------------------------------------------------------------------

def test_masked_mean_ignores_masked_tokens():
    assert masked_mean(torch.tensor([1.0, 100.0, 3.0]), torch.tensor([1, 0, 1])).item() == 2.0
    assert masked_mean(torch.tensor([1.0, math.inf, math.nan]), torch.tensor([1, 0, 0])).item() == 1.0
    assert masked_mean(torch.tensor([1.0, 2.0]), torch.zeros(2)).item() == 0.0  # empty mask
    assert masked_mean(torch.tensor([1.0, 4.0]), torch.tensor([0.5, 1.0])).item() == pytest.approx(3.0)


def test_policy_loss_ratio_one_is_minus_mean_advantage():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    adv = torch.tensor([1.0, -2.0, 4.0])
    mask = torch.tensor([1.0, 1.0, 0.0])
    loss, m = policy_loss(logp, logp, adv, mask)
    assert loss.item() == pytest.approx(-(1.0 - 2.0) / 2)
    assert m["clip_frac"].item() == 0 and m["approx_kl"].item() == 0 and m["ratio_mean"].item() == 1


def test_per_sequence_advantages_broadcast_over_masked_tokens():
    logp = torch.randn(2, 4)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    adv = torch.tensor([2.0, -1.0])
    loss, _ = policy_loss(logp, logp, adv, mask)
    assert loss.item() == pytest.approx(-(2 * 2.0 + 4 * -1.0) / 6)
    assert broadcast_advantages(adv, logp).tolist() == [[2.0] * 4, [-1.0] * 4]
    with pytest.raises(ValueError):
        broadcast_advantages(torch.zeros(3), logp)


def test_policy_loss_clipping_by_hand():
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 0.5, 10.0]))
    adv = torch.tensor([1.0, -1.0, -1.0])
    # rho=1.5, A>0: clipped to 1.2 -> -1.2; rho=0.5, A<0: max(0.5, 0.8) -> 0.8; rho=10, A<0: dual clip -> 3|A|
    for i, want in enumerate([-1.2, 0.8, 3.0]):
        sel = torch.zeros(3)
        sel[i] = 1
        loss, _ = policy_loss(logp, old, adv, sel)
        assert loss.item() == pytest.approx(want, rel=1e-5)
    loss, m = policy_loss(logp, old, 2 * adv, torch.ones(3))
    assert loss.item() == pytest.approx(2 * (-1.2 + 0.8 + 3.0) / 3, rel=1e-5)  # dual clip is 3|A| = 6
    assert m["clip_frac"].item() == pytest.approx(2 / 3)  # tokens 0 and 1 hit the standard clip
    assert m["dual_clip_frac"].item() == pytest.approx(1 / 3)


def test_clipped_tokens_get_no_gradient():
    logp = torch.log(torch.tensor([1.5, 1.1, 10.0])).requires_grad_()
    loss, _ = policy_loss(logp, torch.zeros(3), torch.tensor([1.0, 1.0, -1.0]), torch.ones(3))
    loss.backward()
    # only the unclipped token (rho 1.1, A 1) moves: d(-A rho / 3)/d logp = -rho / 3
    assert logp.grad.tolist() == pytest.approx([0.0, -1.1 / 3, 0.0])


def test_asymmetric_clip():
    logp = torch.log(torch.tensor([1.5]))
    loss, _ = policy_loss(logp, torch.zeros(1), torch.ones(1), torch.ones(1), clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx(-1.28)


def test_k3_kl():
    a = torch.tensor([-1.0, -2.0])
    assert kl_k3(a, a, torch.ones(2)).item() == 0
    d = 0.5  # ref - logp
    assert kl_k3(torch.tensor([-1.5]), torch.tensor([-1.0]), torch.ones(1)).item() == pytest.approx(
        math.exp(d) - d - 1)  # 0.148721
    assert kl_k3(torch.tensor([-1.0]), torch.tensor([-1.5]), torch.ones(1)).item() == pytest.approx(
        math.exp(-d) + d - 1)  # 0.106531
    assert kl_k3(torch.tensor([-30.0]), torch.tensor([-1.0]), torch.ones(1)).item() == 10.0  # clamped twice
    two = kl_k3(torch.tensor([-1.5, -9.0]), torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert two.item() == pytest.approx(math.exp(d) - d - 1)  # the masked token does not count


def test_total_loss():
    pg, kl, ent = torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0)
    cfg = AlgoConfig(kl_coef=0.01, entropy_coef=0.1)
    assert total_loss(pg, cfg, kl, ent).item() == pytest.approx(1.0 + 0.02 - 0.3)
    assert total_loss(pg, cfg).item() == 1.0
    assert total_loss(pg, AlgoConfig(kl_coef=0.0), kl).item() == 1.0


def test_token_logprobs_equals_log_softmax_gather(monkeypatch):
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    ref = torch.log_softmax(logits, -1).gather(-1, labels[..., None]).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, labels), ref, atol=1e-6)
    monkeypatch.setattr(losses, "_CHUNK_BYTES", 3 * 11 * 4)  # 3 rows per chunk: exercises the chunked path
    x = logits.clone().requires_grad_()
    out = token_logprobs(x, labels)
    assert torch.allclose(out, ref, atol=1e-6)
    out.sum().backward()
    y = logits.clone().requires_grad_()
    torch.log_softmax(y, -1).gather(-1, labels[..., None]).sum().backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-6)


def test_token_logprobs_bf16_and_ignore_index():
    logits = torch.randn(4, 7).to(torch.bfloat16)
    labels = torch.tensor([0, -100, 6, 3])
    out = token_logprobs(logits, labels)
    ref = torch.log_softmax(logits.float(), -1)[torch.arange(4), labels.clamp(min=0)]
    assert out.dtype == torch.float32 and out[1] == 0
    assert torch.allclose(out[[0, 2, 3]], ref[[0, 2, 3]], atol=1e-6)


def test_entropy_from_logits():
    torch.manual_seed(1)
    logits = torch.randn(3, 6)
    p = torch.softmax(logits, -1)
    assert torch.allclose(entropy_from_logits(logits), -(p * p.log()).sum(-1), atol=1e-6)
    assert entropy_from_logits(torch.zeros(2, 8)).tolist() == pytest.approx([math.log(8)] * 2)
    masked = torch.tensor([[0.0, -math.inf, 0.0]])  # a banned token: no nan
    assert entropy_from_logits(masked).item() == pytest.approx(math.log(2))
