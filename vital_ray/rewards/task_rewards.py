"""Task terms (docs/method.md §2), one pure function per kind. Each takes the full scored response and the raw ground
truth, and raises MalformedSolution when the ground truth cannot be scored."""

from __future__ import annotations

from dataclasses import dataclass

from vital_ray.rewards.parsing import (
    MalformedSolution, Span, answer_or_text, answer_text, as_number, as_pair, extract_time_range, first_float,
    mcq_letter, parse_span, safe_literal, short_repr, split_span,
)
from vital_ray.rewards.temporal import cut_iou, temporal_iou
from vital_ray.rewards.text_metrics import rouge_mean_f, wer


def time_scope_text(response: str, scope: str = "answer") -> str:
    """Where spans are read. "response": the whole text (VITAL; picks up numbers in <think> and tool-call JSON);
    "answer": the <answer> content only, nothing without one (our default, docs/method.md §7 D6)."""
    if scope == "response":
        return response
    if scope == "answer":
        return answer_text(response) or ""
    raise ValueError(f"time_scope must be 'answer' or 'response', got {scope!r}")


def _text_solution(solution) -> str:
    if isinstance(solution, str):
        return solution
    if isinstance(solution, (int, float)) and not isinstance(solution, bool):
        return str(solution)
    raise MalformedSolution(f"expected a text answer, got {short_repr(solution)}")


def _letter_solution(solution) -> str:
    letter = mcq_letter(_text_solution(solution))
    if letter is None:
        raise MalformedSolution(f"no option letter A-Z in {short_repr(solution)}")
    return letter


def _number_solution(solution) -> float:
    value = as_number(solution)
    if value is None:
        raise MalformedSolution(f"no finite number in {short_repr(solution)}")
    return value


def tg_reward(response: str, solution, alpha: float = 0.0, beta: float = 1.0,
              scope: str = "answer") -> tuple[float, float]:
    """-> (cut IoU, raw IoU) of the predicted span against a [start, end] ground truth."""
    iou = temporal_iou(extract_time_range(time_scope_text(response, scope)), parse_span(solution))
    return cut_iou(iou, alpha, beta), iou


def mcq_reward(response: str, solution) -> float:
    """1.0 iff the first capital letter of the (prefix-stripped) answer equals the ground-truth letter."""
    return float(mcq_letter(answer_or_text(response)) == _letter_solution(solution))


def numeric_score(pred: float | None, gt: float) -> float:
    """Equal at 1 decimal: 1.0; at 0 decimals: 0.5; else 0 (Python's round, half to even, as VITAL)."""
    if pred is None:
        return 0.0
    if round(pred, 1) == round(gt, 1):
        return 1.0
    return 0.5 if round(pred, 0) == round(gt, 0) else 0.0


def numeric_reward(response: str, solution) -> float:
    return numeric_score(first_float(answer_or_text(response)), _number_solution(solution))


def regression_score(pred: float | None, gt: float) -> float:
    """clip(1 - |p - g| / |g|, 0, 1). g = 0 pays only an exact 0 (VITAL's 1e-9 guards scored even that 0)."""
    if pred is None:
        return 0.0
    if gt == 0:
        return 1.0 if pred == 0 else 0.0
    return min(1.0, max(0.0, 1.0 - abs(pred - gt) / abs(gt)))


def regression_reward(response: str, solution) -> float:
    return regression_score(first_float(answer_or_text(response)), _number_solution(solution))


def free_form_reward(response: str, solution) -> float:
    return rouge_mean_f(answer_or_text(response), _text_solution(solution))


def ocr_reward(response: str, solution) -> float:
    """clip(1 - WER, 0, 1) with the ground truth as reference."""
    return min(1.0, max(0.0, 1.0 - wer(_text_solution(solution), answer_or_text(response))))


@dataclass(frozen=True)
class GroundedTruth:
    answer: str  # option letter text or free-form answer
    span: Span


def parse_grounded_truth(solution) -> GroundedTruth:
    """GQA ground truth: {"answer": .., "span": [s, e]}, (answer, [s, e]), or one string holding both (VITAL's
    form; the span is its last valid number pair and is cut out of the answer text)."""
    if isinstance(solution, str):
        value = safe_literal(solution)
        if value is solution:
            rest, span = split_span(solution)
            if span is None:
                raise MalformedSolution(f"no time span in grounded-QA solution {short_repr(solution)}")
            return GroundedTruth(rest, span)
        solution = value
    if isinstance(solution, dict):
        answer, span = solution.get("answer"), solution.get("span")
    elif isinstance(solution, (list, tuple)) and len(solution) == 2 and as_pair(solution[1]) is not None:
        answer, span = solution
    else:
        raise MalformedSolution(f"grounded-QA solution must hold an answer and a span, got {short_repr(solution)}")
    return GroundedTruth(_text_solution(answer), parse_span(span))


def gqa_reward(response: str, solution, free_form: bool, alpha: float = 0.0, beta: float = 1.0,
               iou_weight: float = 0.5, answer_weight: float = 0.5,
               scope: str = "answer") -> tuple[float, float, float]:
    """-> (iou_weight * cut IoU + answer_weight * answer score, raw IoU, answer score).

    The answer score is the option-letter match (NExT-GQA) or ROUGE of the answer texts with their spans cut
    out (ReXTime). VITAL returned the IoU term only (a bug): weights (1, 0) reproduce it."""
    truth = parse_grounded_truth(solution)
    iou = temporal_iou(extract_time_range(time_scope_text(response, scope)), truth.span)
    answer = answer_or_text(response)
    if free_form:
        if not truth.answer.strip():
            raise MalformedSolution(f"grounded-QA solution {short_repr(solution)} has no answer text")
        acc = rouge_mean_f(split_span(answer)[0], truth.answer)
    else:
        acc = float(mcq_letter(answer) == _letter_solution(truth.answer))
    return iou_weight * cut_iou(iou, alpha, beta) + answer_weight * acc, iou, acc
