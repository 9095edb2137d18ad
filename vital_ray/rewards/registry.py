"""task -> reward routing. Total = format_weight*format + tool bonus + task term (spec 4.1), per `TaskSpec`."""

from __future__ import annotations

from dataclasses import dataclass, field

from vital_ray.config import RewardConfig, TaskSpec
from vital_ray.rewards import task as T
from vital_ray.rewards.format import format_reward


@dataclass
class RewardResult:
    total: float
    components: dict = field(default_factory=dict)
    correct: bool = False
    error: str | None = None


def _scope(response: str, cfg: RewardConfig) -> str:
    return T.answer_text(response) if cfg.time_scope == "answer" else response


def _gqa_truth(solution) -> tuple[str, tuple[float, float] | None]:
    if isinstance(solution, dict):
        return str(solution.get("answer", "")), T.parse_span(solution.get("span"))
    return str(solution), T.parse_span(str(solution))


def task_term(spec: TaskSpec, response: str, solution, cfg: RewardConfig) -> tuple[float, dict, bool]:
    """-> (term, components, correct)."""
    answer = T.answer_text(response)
    kind = spec.kind
    if kind == "tg":
        gt = T.parse_span(solution)
        if gt is None:
            raise ValueError(f"temporal-grounding solution {solution!r} is not a [start, end] span")
        iou = T.temporal_iou(T.extract_time_range(_scope(response, cfg)), gt)
        term = T.cut_iou(iou, spec.alpha, spec.beta)
        return term, {"iou": iou}, iou >= 0.5
    if kind == "mcq":
        gt = T.mcq_letter(str(solution))
        ok = float(gt is not None and T.mcq_letter(answer) == gt)
        return ok, {"acc": ok}, ok == 1.0
    if kind in ("gqa_mcq", "gqa_free_form"):
        truth, span = _gqa_truth(solution)
        iou = T.cut_iou(T.temporal_iou(T.extract_time_range(_scope(response, cfg)), span), spec.alpha, spec.beta)
        if kind == "gqa_mcq":
            letter = T.mcq_letter(truth)
            acc = float(letter is not None and T.mcq_letter(answer) == letter)
        else:
            acc = T.rouge_reward(answer, truth)
        term = cfg.gqa_iou_weight * iou + cfg.gqa_answer_weight * acc
        return term, {"iou": iou, "acc": acc}, acc >= 0.5
    scorer = {"numeric": T.numeric_reward, "regression": T.regression_reward, "free_form": T.rouge_reward,
              "ocr": T.ocr_reward}[kind]
    term = scorer(answer, solution)
    return term, {"acc": term}, term >= (1.0 if kind == "numeric" else 0.5)


def score_response(task: str, response: str, solution, n_tool_ok: int, cfg: RewardConfig) -> RewardResult:
    """Never raises: unknown tasks and malformed ground truth are error results with reward 0."""
    spec = cfg.tasks.get(task)
    if spec is None:
        return RewardResult(0.0, error=f"unknown task {task!r}; known: {sorted(cfg.tasks)}")
    try:
        term, comps, correct = task_term(spec, response, solution, cfg)
    except (ValueError, TypeError) as e:
        return RewardResult(0.0, error=f"{task}: {e}")
    fmt = format_reward(response) if spec.use_format else 0.0
    tool = cfg.tool_bonus * min(max(n_tool_ok, 0), cfg.tool_bonus_cap) if spec.use_format else 0.0
    total = cfg.format_weight * fmt + tool + term
    return RewardResult(total, {"format": fmt, "tool": tool, "task": term, **comps}, correct)
