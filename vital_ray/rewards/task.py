"""Task terms: temporal IoU (and cut-IoU), MCQ letter, numeric, regression, ROUGE free-form, OCR (1 - WER)."""

from __future__ import annotations

import ast
import math
import re

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"\b(\d+\.\d+|\d+)\b")
_FLOAT = re.compile(r"-?\d+(?:\.\d+)?")
MCQ_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer", "Best option:",
                "Best option", "Answer:", "Answer", "From")


def answer_text(text: str) -> str:
    """Content of the last `<answer>` block, else the whole text."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else text


def extract_time_range(text: str) -> tuple[float, float] | None:
    """VITAL's rule: per sentence (split on [!?\\n]) pair numbers consecutively; the LAST pair with end >= start."""
    best = None
    for sentence in re.split(r"[!?\n]", text):
        nums = [float(x) for x in _NUMBER.findall(sentence)]
        for a, b in zip(nums[0::2], nums[1::2]):
            if b >= a:
                best = (a, b)
    return best


def parse_span(gt) -> tuple[float, float] | None:
    """Ground truth as [s, e], "[s, e]" or any string whose last number pair is the span (never eval'd)."""
    if isinstance(gt, str):
        try:
            gt = ast.literal_eval(gt.strip())
        except (ValueError, SyntaxError):
            return extract_time_range(gt)
    if isinstance(gt, (list, tuple)) and len(gt) == 2:
        try:
            s, e = float(gt[0]), float(gt[1])
        except (TypeError, ValueError):
            return None
        return (s, e) if math.isfinite(s) and math.isfinite(e) else None
    return None


def temporal_iou(pred: tuple[float, float] | None, gt: tuple[float, float] | None, eps: float = 1e-4) -> float:
    if pred is None or gt is None:
        return 0.0
    inter = max(0.0, min(pred[1], gt[1]) - max(pred[0], gt[0]))
    union = (pred[1] - pred[0] + eps) + (gt[1] - gt[0] + eps) - inter
    return min(1.0, max(0.0, inter / union))


def cut_iou(iou: float, alpha: float, beta: float) -> float:
    return min(1.0, max(0.0, (iou - alpha) / (beta - alpha)))


def mcq_letter(text: str) -> str | None:
    s = text.strip()
    for prefix in MCQ_PREFIXES:
        s = s.replace(prefix, "")
    m = re.search(r"[A-Z]", s)
    return m.group(0) if m else None


def first_float(text: str) -> float | None:
    m = _FLOAT.search(text.replace(",", ""))
    return float(m.group(0)) if m else None


def numeric_reward(pred: str, gt) -> float:
    p, g = first_float(pred), first_float(str(gt))
    if p is None or g is None:
        return 0.0
    if round(p, 1) == round(g, 1):
        return 1.0
    return 0.5 if round(p) == round(g) else 0.0


def regression_reward(pred: str, gt) -> float:
    p, g = first_float(pred), first_float(str(gt))
    if p is None or g is None:
        return 0.0
    if g == 0:
        return 1.0 if p == 0 else 0.0
    return min(1.0, max(0.0, 1.0 - abs(p - g) / abs(g)))


def _tokens(text: str) -> list[str]:
    return [_stem(t) for t in re.sub(r"[^a-z0-9]+", " ", text.lower()).split()]


def _stem(word: str) -> str:
    """A light suffix stemmer (documented stand-in for Porter: no external dependency)."""
    for suffix in ("ingly", "edly", "ing", "ed", "ly", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if not overlap or not n_pred or not n_ref:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def _ngram_f1(pred: list[str], ref: list[str], n: int) -> float:
    def grams(t):
        out: dict[tuple, int] = {}
        for i in range(len(t) - n + 1):
            out[tuple(t[i:i + n])] = out.get(tuple(t[i:i + n]), 0) + 1
        return out

    gp, gr = grams(pred), grams(ref)
    overlap = sum(min(c, gr.get(g, 0)) for g, c in gp.items())
    return _f1(overlap, sum(gp.values()), sum(gr.values()))


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_reward(pred: str, gt: str) -> float:
    """Mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures."""
    p, r = _tokens(pred), _tokens(str(gt))
    scores = (_ngram_f1(p, r, 1), _ngram_f1(p, r, 2), _f1(_lcs(p, r), len(p), len(r)))
    return min(1.0, max(0.0, sum(scores) / 3))


def wer(pred: str, gt: str) -> float:
    p, r = pred.lower().split(), str(gt).lower().split()
    if not r:
        return 0.0 if not p else 1.0
    prev = list(range(len(p) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i]
        for j, pw in enumerate(p, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != pw)))
        prev = cur
    return prev[-1] / len(r)


def ocr_reward(pred: str, gt: str) -> float:
    return min(1.0, max(0.0, 1.0 - wer(pred, gt)))
