"""PPO-clip policy loss with dual clip and the k3 ("low_var_kl") KL loss, token-mean over a mask (verl 0.4)."""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                clip_low: float = 0.2, clip_high: float = 0.2, clip_c: float = 3.0) -> tuple[torch.Tensor, dict]:
    """max(-A*rho, -A*clip(rho, 1-low, 1+high)), and for A<0 additionally min(., -c*A). Token-mean over mask."""
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    ratio = log_ratio.exp()
    loss1 = -adv * ratio
    loss2 = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    clipped = torch.maximum(loss1, loss2)
    dual = torch.minimum(clipped, -clip_c * adv)
    per_token = torch.where(adv < 0, dual, clipped)
    with torch.no_grad():
        metrics = {
            "clip_frac": masked_mean((loss2 > loss1).float(), mask),
            "dual_clip_frac": masked_mean(((adv < 0) & (clipped > -clip_c * adv)).float(), mask),
            "approx_kl": masked_mean(-log_ratio, mask),
        }
    return masked_mean(per_token, mask), metrics


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1, clamped to [-10, 10] like verl."""
    d = (ref_logp - logp).clamp(-10.0, 10.0)
    return masked_mean((d.exp() - d - 1.0).clamp(-10.0, 10.0), mask)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
