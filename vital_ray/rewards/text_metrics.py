"""ROUGE-1/2/L F-measures (as `rouge_score` with use_stemmer=True) and word error rate, dependency-free."""

from __future__ import annotations

import re
from collections import Counter

from vital_ray.rewards.porter import stem

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge_score's tokenizer: lower-case, non-[a-z0-9] -> space (so non-ASCII letters vanish), Porter-stem
    words longer than 3 characters."""
    words = _NON_ALNUM.sub(" ", text.lower()).split()
    return [stem(w) if len(w) > 3 else w for w in words]


def _f_measure(overlap: int, n_pred: int, n_ref: int) -> float:
    precision = overlap / n_pred if n_pred else 0.0
    recall = overlap / n_ref if n_ref else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(pred: list[str], ref: list[str], n: int) -> float:
    gp, gr = _ngrams(pred, n), _ngrams(ref, n)
    overlap = sum((gp & gr).values())
    return _f_measure(overlap, sum(gp.values()), sum(gr.values()))


def lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a  # keep the DP row short
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: list[str], ref: list[str]) -> float:
    return _f_measure(lcs_length(pred, ref), len(pred), len(ref))


def rouge_mean_f(pred: str, ref: str) -> float:
    """VITAL's free-form score: mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures, clipped to [0, 1]."""
    p, r = rouge_tokens(pred), rouge_tokens(ref)
    mean = (rouge_n(p, r, 1) + rouge_n(p, r, 2) + rouge_l(p, r)) / 3
    return min(1.0, max(0.0, mean))


def word_edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance over words (substitution, insertion, deletion all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, rw in enumerate(ref, 1):
        cur = [i]
        for j, hw in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw)))
        prev = cur
    return prev[-1]


def wer(ref: str, hyp: str) -> float:
    """Word error rate as VITAL: whitespace split, case-sensitive, divided by max(1, #reference words)."""
    r, h = ref.split(), hyp.split()
    return word_edit_distance(r, h) / max(1, len(r))
