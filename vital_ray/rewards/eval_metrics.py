"""Benchmark metrics (docs/method.md §5): mIoU, R@k, multi-span IoU for grounded QA, MRA for VSI-Bench numbers."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from vital_ray.rewards.parsing import Span, as_pair
from vital_ray.rewards.temporal import IOU_EPS, temporal_iou


def mean_iou(ious: Iterable[float]) -> float:
    values = list(ious)
    return sum(values) / len(values) if values else 0.0


def recall_at(ious: Iterable[float], thresholds: Sequence[float] = (0.3, 0.5, 0.7)) -> dict[str, float]:
    """{"R@0.3": fraction of samples with IoU >= 0.3, ...}."""
    values = list(ious)
    n = max(len(values), 1)
    return {f"R@{t:g}": sum(v >= t for v in values) / n for t in thresholds}


def multi_span_iou(pred: Span | None, gt_spans, eps: float = IOU_EPS) -> float:
    """IoU of one predicted span against several ground-truth spans: the best match (NExT-GQA has several).
    A single [s, e] pair is accepted as one span. eps=0: the plain IoU of the benchmark scripts."""
    single = as_pair(gt_spans)
    spans = [single] if single is not None else [as_pair(s) for s in gt_spans or ()]
    return max((temporal_iou(pred, s, eps) for s in spans if s is not None), default=0.0)


def mra_thresholds(start: float = 0.5, end: float = 0.95, interval: float = 0.05) -> list[float]:
    """VSI-Bench's (and VITAL's) `linspace(start, end, int((end - start) / interval + 2))`, in float64.

    For the defaults that count is int(10.999999999999998) = 10, i.e. 0.50, 0.55, ..., 0.95: the 11-point grid
    in docs/method.md §5 does not occur in float arithmetic. Pass `thresholds=` to `mra` to score any other grid."""
    n = int((end - start) / interval + 2)
    if n <= 1:
        return [start]
    step = (end - start) / (n - 1)
    return [i * step + start for i in range(n - 1)] + [end]  # numpy.linspace's arithmetic, bit for bit


def mra(pred: float | None, gt: float, thresholds: Sequence[float] | None = None) -> float:
    """Mean relative accuracy: mean over thresholds t of 1[|pred - gt| / |gt| <= 1 - t]. A missing or
    non-finite prediction scores 0; for gt = 0 the absolute error is used (as lmms-eval)."""
    if pred is None or not math.isfinite(pred) or not math.isfinite(gt):
        return 0.0
    rel = abs(pred - gt) / abs(gt) if gt != 0 else abs(pred)
    ts = list(thresholds) if thresholds is not None else mra_thresholds()
    return sum(rel <= 1 - t for t in ts) / len(ts) if ts else 0.0
