"""Answer readers and overlaps of the benchmarks' own evaluation code (`eval.scoring=official`).

Each function restates one rule of the official script named in its docstring (reference list:
docs/real-data.md); the scripts score already-extracted predictions, so the text they read is the model's final
answer (its `<answer>` block, or the whole text without one).
"""

from __future__ import annotations

import math

from vital_ray.rewards.parsing import Span, answer_text, mcq_letter

# lmms-eval videomme/utils.py extract_characters_regex: its prefix list (in its order)
VIDEOMME_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
                     "The best option is", "The correct option is", "Best answer:", "Best option:")


def iou(pred: Span | None, gt: Span | None) -> float:
    """TALL / 2D-TAN / Moment-DETR (ReXTime) / NExT-GQA IoU: intersection over max(end) - min(start), 0 for a
    missing or reversed prediction or an empty union."""
    if pred is None or gt is None or pred[1] < pred[0]:
        return 0.0
    union = max(pred[1], gt[1]) - min(pred[0], gt[0])
    inter = max(0.0, min(pred[1], gt[1]) - max(pred[0], gt[0]))
    return inter / union if union > 0 else 0.0


def iop(pred: Span | None, gt: Span | None) -> float:
    """NExT-GQA eval_ground.get_tIoU's IoP: intersection over the prediction; a zero-length prediction scores 1
    inside the segment (bounds included)."""
    if pred is None or gt is None or pred[1] < pred[0]:
        return 0.0
    if pred[1] == pred[0]:
        return float(gt[0] <= pred[0] <= gt[1])
    return max(0.0, min(pred[1], gt[1]) - max(pred[0], gt[0])) / (pred[1] - pred[0])


def videomme_letter(answer: str) -> str | None:
    """lmms-eval's Video-MME extraction: its prefixes stripped; more than 10 words with no option letter is no
    answer; else the first option letter A-D (standing alone: the first capital of a word is never a letter)."""
    s = answer.strip()
    for prefix in VIDEOMME_PREFIXES:
        s = s.replace(prefix, "")
    return mcq_letter(s, "ABCD")


def final_answer(response: str) -> str:
    """Video-R1 eval_bench.py / Long-RL eval.py extract_answer: the stripped `<answer>` content, or the whole
    response when it has none."""
    found = answer_text(response)
    return (response if found is None else found).strip()


def exact_match(response: str, solution) -> float:
    """Long-RL accuracy_reward and Video-R1's multiple-choice branch: the answer equals the ground truth."""
    return float(final_answer(response) == str(solution).strip())


def _number(text: str) -> float | None:
    """Video-R1's normalize_number: the whole string as a float after removing commas; None otherwise."""
    try:
        value = float(text.replace(",", "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def video_r1_numeric(response: str, solution) -> float:
    """Video-R1 eval_bench.py numerical: both or neither written with a decimal point (or comma), then equal
    numbers after rounding to 2 decimals."""
    pred, gt = final_answer(response), str(solution).strip()
    if any(c in pred for c in ".,") != any(c in gt for c in ".,"):
        return 0.0
    p, g = _number(pred), _number(gt)
    return float(p is not None and g is not None and round(p, 2) == round(g, 2))


def video_r1_regression(response: str, solution) -> float:
    """Video-R1 eval_bench.py regression: mean over t in 0.50, 0.55, ..., 0.95 of 1[rel. error < 1 - t]
    (strictly less, the error relative to |gt| + 1e-8), on the answer read as a whole number string."""
    p, g = _number(final_answer(response)), _number(str(solution))
    if p is None or g is None:
        return 0.0
    rel = abs(p - g) / (abs(g) + 1e-8)
    return sum(rel < 1 - (0.5 + 0.05 * i) for i in range(10)) / 10


def vsibench_token(answer: str) -> str:
    """lmms-eval VSI-Bench fuzzy_matching: the first space-separated token without a trailing period."""
    return answer.strip().split(" ")[0].rstrip(".").strip()


def vsibench_number(answer: str) -> float | None:
    """lmms-eval VSI-Bench to_float(fuzzy_matching(pred)): None (MRA 0) when the token is not a number."""
    try:
        value = float(vsibench_token(answer))
    except ValueError:
        return None
    return value if math.isfinite(value) else None
