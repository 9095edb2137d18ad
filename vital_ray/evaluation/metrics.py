"""Benchmark metrics (docs/method.md §5), pure functions.

`score_sample(metric, response, solution, scoring=...)` scores one prediction; `aggregate(family, rows)` turns the
scored rows of one benchmark into its headline numbers (fractions in [0, 1]); `summary_table` prints them.

Two scoring modes (docs/real-data.md):
- `official`: each benchmark's own evaluation code (`vital_ray.evaluation.official`): IoU over max(end) -
  min(start), spans read from the answer (`reward.time_scope`), each benchmark's own answer reader, an LLM judge
  for open-ended MMVU / Video-MMMU answers;
- `vital`: VITAL's eval scripts: IoU with eps 1e-4, the last time pair of the whole output, the option letter of
  the answer text, MMVU's open answers by MRA on the first number.
Both count IoU >= t for R@t.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

from vital_ray.evaluation import official
from vital_ray.rewards import task_rewards as tr
from vital_ray.rewards.eval_metrics import mean_iou, mra, recall_at
from vital_ray.rewards.parsing import (
    Span, all_time_ranges, answer_or_text, as_number, as_pair, extract_time_range, first_float, mcq_letter,
)
from vital_ray.rewards.temporal import IOU_EPS, temporal_iou

IOU_THRESHOLDS = (0.3, 0.5, 0.7)
METRICS = ("tg", "tg_multi", "mcq", "gqa", "gqa_free", "mra", "open", "numeric", "regression", "free_form", "ocr")
SCORINGS = ("official", "vital")
JUDGED = ("mmvu", "videommmu")  # benchmarks whose open-ended answers an LLM judges officially


# ---------------------------------------------------------------- spans

def span_iou(pred: Span | None, gt: Span | None, scoring: str = "official") -> float:
    """Temporal IoU of the scoring mode: the official scripts' (max end - min start union) or VITAL's (eps)."""
    return temporal_iou(pred, gt, eps=IOU_EPS) if scoring == "vital" else official.iou(pred, gt)


def best_iou(pred: Span | None, spans: Sequence[Span], scoring: str = "official") -> float:
    """IoU against several ground-truth spans: the best match (NExT-GQA's eval_ground takes the max)."""
    return max((span_iou(pred, g, scoring) for g in spans), default=0.0)


def gt_spans(solution) -> list[Span]:
    """[s, e] or [[s, e], ...] -> a list of spans."""
    single = as_pair(solution)
    if single is not None:
        return [single]
    spans = [as_pair(s) for s in (solution or ())]
    if not spans or any(s is None for s in spans):
        raise tr.MalformedSolution(f"expected [start, end] spans, got {tr.short_repr(solution)}")
    return spans  # type: ignore[return-value]


def _merge(spans: Sequence[Span]) -> list[list[float]]:
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def span_set_iou(pred: Sequence[Span], gt: Sequence[Span]) -> float:
    """VUE-TR's overlap: total intersection / total union of two span sets (predictions merged first, as
    `qa_eval.overlap_ratio`). No ground truth and no prediction is 1; one side empty is 0."""
    if not gt:
        return 1.0 if not pred else 0.0
    merged = _merge([p for p in pred if p[1] >= p[0]])
    if not merged:
        return 0.0
    inter = sum(max(0.0, min(p[1], g[1]) - max(p[0], g[0])) for p in merged for g in gt)
    union = sum(p[1] - p[0] for p in merged) + sum(g[1] - g[0] for g in gt) - inter
    return min(1.0, max(0.0, inter / union)) if union > 0 else 0.0


def iou_auc(ious: Iterable[float], steps: int = 101) -> float:
    """VUE-TR's headline "IoU": area under the success curve, success(t) = fraction with IoU > t, t on
    linspace(0, 1, steps), trapezoid rule."""
    values = list(ious)
    if not values:
        return 0.0
    ts = [i / (steps - 1) for i in range(steps)]
    ys = [sum(v > t for v in values) / len(values) for t in ts]
    return sum((ys[i] + ys[i + 1]) / 2 * (ts[i + 1] - ts[i]) for i in range(steps - 1))


# ---------------------------------------------------------------- one sample

def _letter(solution) -> str:
    letter = mcq_letter(str(solution))
    if letter is None:
        raise tr.MalformedSolution(f"no option letter in {tr.short_repr(solution)}")
    return letter


def _judge_open(judge, question: str, text: str, solution) -> dict:
    if judge is None:
        raise ValueError("open-ended answers under eval.scoring=official need the LLM judge (eval.judge.base_url)")
    verdict = judge.judge(question, str(solution), answer_or_text(text).strip())
    return {"score": float(verdict), "correct": float(verdict), "pred": answer_or_text(text).strip()}


def _mcq(text: str, solution, scoring: str, benchmark: str) -> dict:
    answer = answer_or_text(text)
    gt = _letter(solution)
    if scoring == "official" and benchmark in ("longvideo_reason", "video_r1"):
        acc = official.exact_match(text, gt)  # Long-RL eval.py, Video-R1 eval_bench.py: the answer is the letter
        return {"score": acc, "correct": acc, "pred": official.final_answer(text)}
    if scoring == "official" and benchmark == "vsibench":
        pred = official.vsibench_token(answer)
        acc = float(pred.lower() == gt.lower())
        return {"score": acc, "correct": acc, "pred": pred}
    letter = official.videomme_letter(answer) if scoring == "official" and benchmark == "videomme" \
        else mcq_letter(answer)
    acc = float(letter == gt)
    return {"score": acc, "correct": acc, "pred": letter}


def score_sample(metric: str, response: str, solution, scope: str = "answer", scoring: str = "official",
                 benchmark: str = "", judge=None, question: str = "") -> dict:
    """-> {"score": main per-sample score in [0, 1], "pred": what was read, + "iou"/"iop"/"correct"}.

    `scope` is where official spans are read (`reward.time_scope`); `vital` always reads the whole output.
    `judge` (`vital_ray.evaluation.judge.Judge`) scores open-ended MMVU / Video-MMMU answers officially.
    Raises MalformedSolution for an unscorable ground truth (the driver records it as an error row)."""
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; known: {', '.join(SCORINGS)}")
    text = response or ""
    scope = "response" if scoring == "vital" else scope
    if metric == "tg":
        pred = extract_time_range(tr.time_scope_text(text, scope))
        iou = best_iou(pred, gt_spans(solution), scoring)
        return {"score": iou, "iou": iou, "pred": None if pred is None else list(pred)}
    if metric == "tg_multi":
        pred = [(math.floor(s), math.ceil(e)) for s, e in all_time_ranges(tr.time_scope_text(text, scope))]
        iou = span_set_iou(pred, gt_spans(solution))
        return {"score": iou, "iou": iou, "pred": [list(p) for p in pred]}
    if metric in ("gqa", "gqa_free"):
        truth = solution if isinstance(solution, dict) else tr.parse_grounded_truth(solution).__dict__
        spans = gt_spans(truth.get("spans") or truth["span"])
        pred = extract_time_range(tr.time_scope_text(text, scope))
        answer = answer_or_text(text)
        if metric == "gqa":
            letter = mcq_letter(answer)
            acc = float(letter == _letter(truth["answer"]))
        else:  # free-form grounded answer (VITAL's rextime format): ROUGE of the answer texts
            letter, acc = None, tr.rouge_mean_f(tr.split_span(answer)[0], str(truth["answer"]))
        return {"score": acc, "correct": acc, "iou": best_iou(pred, spans, scoring),
                "iop": max(official.iop(pred, g) for g in spans),
                "pred": {"answer": letter, "span": None if pred is None else list(pred)}}
    if metric == "mcq":
        return _mcq(text, solution, scoring, benchmark)
    if metric == "mra":
        gt = as_number(solution)
        if gt is None:
            raise tr.MalformedSolution(f"no number in {tr.short_repr(solution)}")
        answer = answer_or_text(text)
        pred = official.vsibench_number(answer) if scoring == "official" else first_float(answer)
        return {"score": mra(pred, gt), "pred": pred}
    if metric == "open":
        if scoring == "official" and benchmark in JUDGED:
            return _judge_open(judge, question, text, solution)
        gt = first_float(str(solution))  # VITAL's eval_VQA: MRA on the first number; no number scores 0
        pred = first_float(answer_or_text(text))
        return {"score": 0.0 if gt is None else mra(pred, gt), "pred": pred}
    if scoring == "official" and metric == "numeric":
        return {"score": official.video_r1_numeric(text, solution), "pred": official.final_answer(text)}
    if scoring == "official" and metric == "regression":
        return {"score": official.video_r1_regression(text, solution), "pred": official.final_answer(text)}
    rewards = {"numeric": tr.numeric_reward, "regression": tr.regression_reward,
               "free_form": tr.free_form_reward, "ocr": tr.ocr_reward}
    if metric in rewards:
        return {"score": rewards[metric](text, solution), "pred": answer_or_text(text).strip()}
    raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")


# ---------------------------------------------------------------- one benchmark

def _mean(values: Iterable[float]) -> float:
    v = list(values)
    return sum(v) / len(v) if v else 0.0


def _at(values: Sequence[float], name: str, thresholds=IOU_THRESHOLDS) -> dict[str, float]:
    return {f"{name}@{t:g}": (sum(x >= t for x in values) / len(values) if values else 0.0) for t in thresholds}


def grounding_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """mIoU and R@{0.3,0.5,0.7} (IoU >= t) of one predicted span per query."""
    ious = [r.get("iou") or 0.0 for r in rows]
    return {"mIoU": mean_iou(ious), **recall_at(ious, IOU_THRESHOLDS)}


def vuetr_metrics(rows: Sequence[dict]) -> dict[str, float]:
    ious = [r.get("iou") or 0.0 for r in rows]
    return {"IoU-AUC": iou_auc(ious), **grounding_metrics(rows)}


def nextgqa_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """NExT-GQA's eval_ground: max IoU / IoP over the GT spans; Acc@GQA = answer right AND IoP >= 0.5."""
    iop = [r.get("iop") or 0.0 for r in rows]
    iou = [r.get("iou") or 0.0 for r in rows]
    acc = [r.get("correct") or 0.0 for r in rows]
    return {"Acc@QA": _mean(acc), "Acc@GQA": _mean(a * (p >= 0.5) for a, p in zip(acc, iop)),
            "mIoP": _mean(iop), **_at(iop, "IoP", (0.3, 0.5)), "mIoU": _mean(iou), **_at(iou, "IoU", (0.3, 0.5))}


def rextime_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """ReXTime's rextime_eval: accuracy, mIoU, R1@t, and Acc@IoU>=t (answer right AND IoU >= t)."""
    iou = [r.get("iou") or 0.0 for r in rows]
    acc = [r.get("correct") or 0.0 for r in rows]
    out = {"Acc": _mean(acc), "mIoU": _mean(iou), **_at(iou, "R")}
    out.update({f"Acc@IoU{t:g}": _mean(a * (u >= t) for a, u in zip(acc, iou)) for t in IOU_THRESHOLDS})
    return out


def qa_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """Accuracy (mean per-sample score: letter match, MRA or text match) and a per-question_type breakdown."""
    out = {"Acc": _mean(r.get("score") or 0.0 for r in rows)}
    groups = defaultdict(list)
    for r in rows:
        if r.get("question_type"):
            groups[r["question_type"]].append(r.get("score") or 0.0)
    if len(groups) > 1:
        out.update({f"Acc/{k}": _mean(v) for k, v in sorted(groups.items())})
    return out


VSI_MRA_TYPES = ("object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation")


def vsibench_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """lmms-eval's VSI-Bench aggregation: mean per question type (accuracy or MRA), the three
    object_rel_direction_* difficulties averaged into one, overall = mean over the types."""
    groups = defaultdict(list)
    for r in rows:
        groups[r.get("question_type") or "?"].append(r.get("score") or 0.0)
    per = {k: _mean(v) for k, v in groups.items()}
    directions = [per.pop(k) for k in sorted(per) if k.startswith("object_rel_direction_")]
    if directions:
        per["object_rel_direction"] = _mean(directions)
    out = {"overall": _mean(per.values())}
    out.update({f"{k}/{'MRA' if k in VSI_MRA_TYPES else 'Acc'}": v for k, v in sorted(per.items())})
    return out


def mixed_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """MTVR-format files mix tasks: grounding numbers over the rows with a span, accuracy over the rest."""
    spans = [r for r in rows if r.get("metric") in ("tg", "tg_multi")]
    qa = [r for r in rows if r not in spans]
    out = grounding_metrics(spans) if spans else {}
    return out | (qa_metrics(qa) if qa else {})


AGGREGATORS = {"grounding": grounding_metrics, "vuetr": vuetr_metrics, "nextgqa": nextgqa_metrics,
               "rextime": rextime_metrics, "qa": qa_metrics, "vsibench": vsibench_metrics, "mixed": mixed_metrics}


def aggregate(family: str, rows: Sequence[dict]) -> dict[str, float]:
    """Headline metrics of one benchmark over its scored rows (error rows count as wrong: score 0)."""
    if family not in AGGREGATORS:
        raise ValueError(f"unknown metric family {family!r}; known: {', '.join(AGGREGATORS)}")
    return AGGREGATORS[family](rows)


def summary_table(results: dict[str, dict]) -> str:
    """Markdown table, one row per benchmark (or run): metrics in percent, counts as integers."""
    keys = list(dict.fromkeys(k for m in results.values() for k in m))
    lines = ["| benchmark | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in results.items():
        cells = []
        for k in keys:
            v = m.get(k)
            cells.append("" if v is None else str(v) if isinstance(v, int) else f"{100 * v:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
