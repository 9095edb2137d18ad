"""Rewards: hand-computed values and edge cases; never an exception on bad input."""

import pytest

from vital_ray.config import RewardConfig, TaskSpec
from vital_ray.rewards import score_response
from vital_ray.rewards.format import format_reward
from vital_ray.rewards.task import (cut_iou, extract_time_range, mcq_letter, numeric_reward, ocr_reward,
                                    regression_reward, rouge_reward, temporal_iou)

TOOL_TRACE = ("<think>look</think><tool_call>{\"name\": \"x\"}</tool_call><think>seen</think>"
              "<answer>The event happens in the 20.00 - 30.00 seconds.</answer>")


@pytest.mark.parametrize("text, want", [
    (TOOL_TRACE, 1.0),
    ("<think>a</think> \n <answer>B</answer>", 1.0),
    ("<answer>B</answer>", 0.0),  # must start with think
    ("<think>a</think><think>b</think><answer>B</answer>", 0.0),  # same tag twice in a row
    ("<think>a</think> junk <answer>B</answer>", 0.0),  # text between blocks
    ("<think>a</think><tool_call>{}</tool_call>", 0.0),  # must end with answer
    ("<think>a</think><foo>x</foo><answer>B</answer>", 0.0),  # unknown tag
    ("", 0.0), ("no tags at all", 0.0),
])
def test_format_reward(text, want):
    assert format_reward(text) == want


def test_time_range_takes_last_valid_pair_per_vital():
    assert extract_time_range("from 3 to 5. Actually 10.5 - 20.25 seconds") == (10.5, 20.25)
    assert extract_time_range("30 - 20") is None  # end < start
    assert extract_time_range("nothing") is None


def test_iou_and_cut():
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15, abs=1e-4)
    assert temporal_iou((0, 1), (2, 3)) == 0.0
    assert temporal_iou(None, (2, 3)) == 0.0
    assert cut_iou(0.5, 0.2, 0.8) == pytest.approx(0.5)
    assert cut_iou(0.1, 0.2, 0.8) == 0.0 and cut_iou(0.9, 0.2, 0.8) == 1.0


def test_tg_total_with_tool_bonus_and_cut():
    cfg = RewardConfig()
    r = score_response("synthetic/tg", TOOL_TRACE, [20.0, 30.0], 3, cfg)  # bonus capped at 2 calls
    assert r.components["format"] == 1.0 and r.components["tool"] == 1.0
    assert r.total == pytest.approx(3.0, abs=1e-3) and r.correct
    r = score_response("vidchapter", TOOL_TRACE, [20.0, 40.0], 0, cfg)  # iou 0.5 -> cut(0, 0.5) = 1
    assert r.components["task"] == pytest.approx(1.0, abs=1e-3)
    r = score_response("synthetic/tg", TOOL_TRACE, "[20.0, 30.0]", 0, cfg)  # GT as a string, not eval'd
    assert r.components["iou"] == pytest.approx(1.0, abs=1e-3)


def test_answer_scope_ignores_numbers_in_think_and_tool_json():
    text = "<think>maybe 1 - 2</think><answer>no idea</answer>"
    assert score_response("synthetic/tg", text, [1, 2], 0, RewardConfig()).components["iou"] == 0.0
    parity = RewardConfig(time_scope="response")  # VITAL's whole-text rule
    assert score_response("synthetic/tg", text, [1, 2], 0, parity).components["iou"] == pytest.approx(1, abs=1e-3)


def test_mcq_numeric_regression_rouge_ocr():
    assert mcq_letter("The best answer is C.") == "C"
    cfg = RewardConfig()
    assert score_response("synthetic/mcq", "<think>x</think><answer>(B) cat</answer>", "B", 0, cfg).total == 2.0
    assert score_response("synthetic/mcq", "<think>x</think><answer>b</answer>", "B", 0, cfg).components["acc"] == 0
    assert numeric_reward("about 3.14", "3.14") == 1.0
    assert numeric_reward("3.2", "3.0") == 0.5 and numeric_reward("5", "3") == 0.0
    assert regression_reward("90", "100") == pytest.approx(0.9) and regression_reward("1", "0") == 0.0
    assert rouge_reward("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert rouge_reward("", "the cat") == 0.0
    assert ocr_reward("hello world", "hello there world") == pytest.approx(2 / 3)


def test_grounded_qa_pays_span_and_answer():
    cfg = RewardConfig()
    text = "<think>x</think><answer>C, from 3.0 to 6.0</answer>"
    r = score_response("nextgqa", text, "C [3.0, 6.0]", 0, cfg)
    assert r.components["acc"] == 1.0 and r.components["iou"] == pytest.approx(1.0, abs=1e-3)
    assert r.components["task"] == pytest.approx(1.0, abs=1e-3)
    wrong = score_response("nextgqa", text.replace("C,", "A,"), "C [3.0, 6.0]", 0, cfg)
    assert wrong.components["task"] == pytest.approx(0.5, abs=1e-3)  # the original paid 1.0 here (IoU only)
    original = RewardConfig(gqa_iou_weight=1.0, gqa_answer_weight=0.0)
    assert score_response("nextgqa", text.replace("C,", "A,"), "C [3.0, 6.0]", 0, original).components["task"] \
        == pytest.approx(1.0, abs=1e-3)
    r = score_response("rextime", text, {"answer": "C", "span": [3, 6]}, 0, cfg)
    assert r.error is None and r.components["iou"] == pytest.approx(1.0, abs=1e-3)


def test_bad_inputs_are_error_results():
    cfg = RewardConfig()
    r = score_response("unknown/task", "x", "B", 0, cfg)
    assert r.total == 0 and "unknown task" in r.error
    r = score_response("synthetic/tg", TOOL_TRACE, "not a span", 0, cfg)
    assert r.total == 0 and "span" in r.error
    nan = score_response("synthetic/tg", "<think>x</think><answer>nan - inf</answer>", [1, 2], 0, cfg)
    assert nan.error is None and nan.components["iou"] == 0.0
    cfg.tasks["plain"] = TaskSpec("mcq", use_format=False)
    assert score_response("plain", "<think>x</think><answer>A</answer>", "A", 2, cfg).total == 1.0
