"""PPO-clip policy loss with dual clip, k3 ("low_var_kl") KL, entropy, token log-probs (verl 0.4 semantics, docs/method.md §3.2).

All losses are token means over a mask (verl's "token-mean" within one micro-batch). The mask may carry
per-token weights (0 for filler samples); the mean is then weighted.
"""

from __future__ import annotations

import torch

from vital_ray.config import AlgoConfig

LOG_RATIO_CLAMP = 20.0  # keeps exp() finite when old and new log-probs drift far apart
KL_CLAMP = 10.0
_CHUNK_BYTES = 1 << 28  # float32 logits processed per chunk (256 MiB: ~440 rows of a 151k vocabulary)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(x * mask) / sum(mask); 0 when the mask is empty. Masked positions never contribute, even inf/nan."""
    mask = mask.to(x.dtype)
    x = torch.where(mask != 0, x, torch.zeros_like(x))
    denom = mask.sum()
    return (x * mask).sum() / torch.where(denom != 0, denom, torch.ones_like(denom))


def broadcast_advantages(adv: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sequence advantages (B,) -> per-token (B, T) like `like`; per-token advantages pass through."""
    if adv.shape == like.shape:
        return adv
    if adv.dim() == like.dim() - 1 and adv.shape == like.shape[:-1]:
        return adv.unsqueeze(-1).expand_as(like)
    raise ValueError(f"advantages {tuple(adv.shape)} fit neither tokens {tuple(like.shape)} nor sequences")


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                clip_low: float = 0.2, clip_high: float = 0.2, clip_c: float = 3.0) -> tuple[torch.Tensor, dict]:
    """PPO-clip: max(-A*rho, -A*clip(rho, 1 - clip_low, 1 + clip_high)); for A < 0 also capped at -c*A (dual
    clip, so a huge ratio on a bad token cannot blow the loss up). Token mean over `mask`.

    logp / old_logp / mask: (B, T) or flat (N,); adv: per token, or (B,) per sequence.
    metrics: clip_frac (standard clip active), dual_clip_frac (dual cap active), approx_kl (mean old - new
    log-prob), ratio_mean; all detached."""
    adv = broadcast_advantages(adv.to(logp.dtype), logp)
    log_ratio = (logp - old_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    ppo = torch.maximum(unclipped, clipped)
    cap = -clip_c * adv
    per_token = torch.where(adv < 0, torch.minimum(ppo, cap), ppo)
    with torch.no_grad():
        metrics = {
            "clip_frac": masked_mean((clipped > unclipped).float(), mask),
            "dual_clip_frac": masked_mean(((adv < 0) & (ppo > cap)).float(), mask),
            "approx_kl": masked_mean(-log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return masked_mean(per_token, mask), metrics


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k3 estimate of KL(pi || ref): exp(d) - d - 1 with d = ref - logp, d and the result clamped to [-10, 10]
    (verl's low_var_kl). Non-negative, zero iff the log-probs agree."""
    d = (ref_logp - logp).clamp(-KL_CLAMP, KL_CLAMP)
    return masked_mean((d.exp() - d - 1.0).clamp(-KL_CLAMP, KL_CLAMP), mask)


def total_loss(pg: torch.Tensor, cfg: AlgoConfig, kl: torch.Tensor | None = None,
               entropy: torch.Tensor | None = None) -> torch.Tensor:
    """pg + kl_coef * kl - entropy_coef * entropy (missing terms count as 0)."""
    loss = pg
    if kl is not None and cfg.kl_coef:
        loss = loss + cfg.kl_coef * kl
    if entropy is not None and cfg.entropy_coef:
        loss = loss - cfg.entropy_coef * entropy
    return loss


def _row_chunks(n_rows: int, vocab: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_BYTES // (4 * max(vocab, 1)))
    return [(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[label] in float32, (..., V) + (...) -> (...); negative labels (ignore index) give 0.

    Computed as logit[label] - logsumexp(logits), a row chunk at a time: no full-width log_softmax output is
    ever built (with a 151k vocabulary that is 0.6 MB per token), only the float32 copy of each chunk, which
    autograd keeps when gradients are needed."""
    flat = logits.reshape(-1, logits.shape[-1])
    idx = labels.reshape(-1, 1).to(torch.long)
    ignore = idx < 0
    idx = idx.clamp(min=0)
    parts = []
    for a, b in _row_chunks(flat.shape[0], flat.shape[1]):
        chunk = flat[a:b].float()
        parts.append(chunk.gather(-1, idx[a:b]).squeeze(-1) - torch.logsumexp(chunk, dim=-1))
    out = torch.cat(parts) if parts else flat.new_zeros(0, dtype=torch.float32)
    out = torch.where(ignore.squeeze(-1), torch.zeros_like(out), out)
    return out.reshape(labels.shape)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy of softmax(logits) in float32, (..., V) -> (...): logsumexp(l) - sum(p * l)."""
    flat = logits.reshape(-1, logits.shape[-1])
    parts = []
    for a, b in _row_chunks(flat.shape[0], flat.shape[1]):
        chunk = flat[a:b].float()
        probs = torch.softmax(chunk, dim=-1)
        finite = torch.where(torch.isfinite(chunk), chunk, torch.zeros_like(chunk))  # -inf logits: p = 0, no nan
        parts.append(torch.logsumexp(chunk, dim=-1) - (probs * finite).sum(-1))
    out = torch.cat(parts) if parts else flat.new_zeros(0, dtype=torch.float32)
    return out.reshape(logits.shape[:-1])
