"""task -> reward routing (docs/method.md §2.3, §7 D5): an explicit `cfg.tasks` registry instead of VITAL's data_source
string matching. Total = format_weight * format + tool bonus + task term; format and tool bonus only count
for tasks with `use_format` (VITAL adds the tool bonus inside its format term, even when the format fails)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from vital_ray.config import RewardConfig, TaskSpec
from vital_ray.rewards import task_rewards as tr
from vital_ray.rewards.format import format_reward, tool_bonus
from vital_ray.rewards.parsing import MalformedSolution


@dataclass
class RewardResult:
    total: float
    components: dict[str, float] = field(default_factory=dict)  # format, tool, task (+ iou / acc)
    correct: bool = False  # the "accuracy" metric
    error: str | None = None  # set when the sample could not be scored (total is then 0)


@dataclass(frozen=True)
class _TaskScore:
    term: float
    correct: bool
    extra: dict[str, float]


def _tg(response: str, solution, spec: TaskSpec, cfg: RewardConfig) -> _TaskScore:
    term, iou = tr.tg_reward(response, solution, spec.alpha, spec.beta, cfg.time_scope)
    return _TaskScore(term, iou >= 0.5, {"iou": iou})  # correct = R@0.5 on the raw IoU, whatever the cut


def _gqa(free_form: bool) -> Callable[..., _TaskScore]:
    def score(response: str, solution, spec: TaskSpec, cfg: RewardConfig) -> _TaskScore:
        term, iou, acc = tr.gqa_reward(response, solution, free_form, spec.alpha, spec.beta, cfg.gqa_iou_weight,
                                       cfg.gqa_answer_weight, cfg.time_scope)
        return _TaskScore(term, acc >= 0.5 if free_form else acc == 1.0, {"iou": iou, "acc": acc})
    return score


def _plain(fn: Callable[[str, Any], float], discrete: bool) -> Callable[..., _TaskScore]:
    """Answer-only kinds: correct means a full score for discrete terms, >= 0.5 for continuous ones."""
    def score(response: str, solution, spec: TaskSpec, cfg: RewardConfig) -> _TaskScore:
        term = fn(response, solution)
        return _TaskScore(term, term == 1.0 if discrete else term >= 0.5, {"acc": term})
    return score


SCORERS: dict[str, Callable[[str, Any, TaskSpec, RewardConfig], _TaskScore]] = {
    "tg": _tg,
    "mcq": _plain(tr.mcq_reward, discrete=True),
    "numeric": _plain(tr.numeric_reward, discrete=True),
    "regression": _plain(tr.regression_reward, discrete=False),
    "free_form": _plain(tr.free_form_reward, discrete=False),
    "ocr": _plain(tr.ocr_reward, discrete=False),
    "gqa_mcq": _gqa(free_form=False),
    "gqa_free_form": _gqa(free_form=True),
}


def _error(message: str) -> RewardResult:
    return RewardResult(0.0, {"format": 0.0, "tool": 0.0, "task": 0.0}, False, message)


def score_response(task: str, response: str, solution, n_tool_ok: int, cfg: RewardConfig) -> RewardResult:
    """Score one rollout's generated text. Never raises: an unknown task or an unscorable ground truth gives a
    zero-reward result with `error` set (a whole group then has zero variance and no gradient)."""
    spec = cfg.tasks.get(task)
    if spec is None:
        return _error(f"unknown task {task!r}; known tasks: {', '.join(sorted(cfg.tasks))}")
    scorer = SCORERS.get(spec.kind)
    if scorer is None:
        return _error(f"task {task!r} has unknown kind {spec.kind!r}; known kinds: {', '.join(SCORERS)}")
    text = "" if response is None else str(response)
    try:
        scored = scorer(text, solution, spec, cfg)
        fmt = format_reward(text) if spec.use_format else 0.0
        bonus = tool_bonus(n_tool_ok, cfg) if spec.use_format else 0.0
    except MalformedSolution as e:
        return _error(f"task {task!r}: malformed solution: {e}")
    except Exception as e:  # a reward worker must not die on one odd sample; the error is surfaced instead
        return _error(f"task {task!r}: {type(e).__name__}: {e}")
    total = cfg.format_weight * fmt + bonus + scored.term
    return RewardResult(total, {"format": fmt, "tool": bonus, "task": scored.term, **scored.extra}, scored.correct)


def score_batch(items: Iterable[tuple | Mapping], cfg: RewardConfig) -> list[RewardResult]:
    """items: (task, response, solution, n_tool_ok) tuples or mappings with those keys."""
    out = []
    for item in items:
        if isinstance(item, Mapping):
            item = (item["task"], item["response"], item["solution"], item.get("n_tool_ok", 0))
        out.append(score_response(*item, cfg))
    return out
