"""Rule-based rewards (format, tool bonus, IoU/cut-IoU, MCQ, numeric, regression, ROUGE, WER, grounded QA)."""

from vital_ray.rewards.registry import RewardResult, score_response

__all__ = ["RewardResult", "score_response"]
