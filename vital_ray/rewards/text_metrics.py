"""Free-form and OCR scores: ROUGE through `rouge_score`, word error rate through `jiwer`."""

from __future__ import annotations

from functools import lru_cache

import jiwer
from rouge_score import rouge_scorer

_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(_ROUGE_TYPES), use_stemmer=True)


def rouge_mean_f(pred: str, ref: str) -> float:
    """VITAL's free-form score: mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures, clipped to [0, 1]."""
    scores = _scorer().score(ref, pred)
    mean = sum(scores[k].fmeasure for k in _ROUGE_TYPES) / len(_ROUGE_TYPES)
    return min(1.0, max(0.0, mean))


def wer(ref: str, hyp: str) -> float:
    """Word error rate as VITAL: whitespace split, case-sensitive, divided by max(1, #reference words).

    jiwer refuses an empty reference; VITAL divides by 1 there, so every hypothesis word counts as an insertion."""
    r, h = " ".join(ref.split()), " ".join(hyp.split())
    if not r:
        return float(len(h.split()))
    return jiwer.wer(r, h) if h else 1.0
