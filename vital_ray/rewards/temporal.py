"""Temporal IoU and the per-task linear "cut" (docs/method.md §2.3; the paper's task-level difficulty scaling)."""

from __future__ import annotations

import math

from vital_ray.rewards.parsing import Span

IOU_EPS = 1e-4


def temporal_iou(pred: Span | None, gt: Span | None, eps: float = IOU_EPS) -> float:
    """VITAL's IoU: eps on both lengths and on the union, clipped to [0, 1]; a missing, reversed or
    non-finite span scores 0 (VITAL's negative error codes, clipped). eps=0 is the plain IoU of benchmarks."""
    if pred is None or gt is None or pred[1] < pred[0] or gt[1] < gt[0]:
        return 0.0
    inter = max(0.0, min(pred[1], gt[1]) - max(pred[0], gt[0]))
    union = (pred[1] - pred[0] + eps) + (gt[1] - gt[0] + eps) - inter + eps
    if union <= 0:  # two empty spans with eps=0 (benchmark IoU)
        return 0.0
    iou = inter / union
    return min(1.0, max(0.0, iou)) if math.isfinite(iou) else 0.0


def cut_iou(iou: float, alpha: float, beta: float) -> float:
    """clamp((iou - alpha) / (beta - alpha), 0, 1); (0, 1) is the identity on [0, 1]."""
    if not beta > alpha:
        raise ValueError(f"cut_iou needs beta > alpha, got alpha={alpha}, beta={beta}")
    return min(1.0, max(0.0, (iou - alpha) / (beta - alpha)))
