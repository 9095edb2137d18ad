"""Rule-based rewards (format, tool bonus, IoU/cut-IoU, MCQ, numeric, regression, ROUGE, WER, grounded QA) and
benchmark metrics. Pure functions: the Ray reward pool only calls `score_response`."""

from vital_ray.rewards.eval_metrics import mean_iou, mra, mra_thresholds, multi_span_iou, recall_at
from vital_ray.rewards.format import format_reward, tag_blocks, tool_bonus
from vital_ray.rewards.parsing import (
    MalformedSolution, answer_text, extract_time_range, first_float, mcq_letter, parse_span,
)
from vital_ray.rewards.registry import SCORERS, RewardResult, score_batch, score_response
from vital_ray.rewards.task_rewards import (
    free_form_reward, gqa_reward, mcq_reward, numeric_reward, ocr_reward, parse_grounded_truth, regression_reward,
    tg_reward,
)
from vital_ray.rewards.temporal import cut_iou, temporal_iou
from vital_ray.rewards.text_metrics import rouge_mean_f, wer

__all__ = [
    "RewardResult", "score_response", "score_batch", "SCORERS", "MalformedSolution",
    "format_reward", "tag_blocks", "tool_bonus",
    "answer_text", "extract_time_range", "first_float", "mcq_letter", "parse_span", "parse_grounded_truth",
    "temporal_iou", "cut_iou", "rouge_mean_f", "wer",
    "tg_reward", "mcq_reward", "numeric_reward", "regression_reward", "free_form_reward", "ocr_reward", "gqa_reward",
    "mean_iou", "recall_at", "multi_span_iou", "mra", "mra_thresholds",
]
