"""Rewards and eval metrics: hand-computed values, VITAL parity and edge cases (never an exception)."""

import math
import random
import re

import pytest

from vital_ray.config import RewardConfig, TaskSpec
from vital_ray.rewards import (
    MalformedSolution, cut_iou, extract_time_range, format_reward, free_form_reward, gqa_reward, mcq_letter,
    mcq_reward, mean_iou, mra, mra_thresholds, multi_span_iou, numeric_reward, ocr_reward, parse_grounded_truth,
    parse_span, recall_at, regression_reward, rouge_mean_f, score_batch, score_response, tag_blocks,
    temporal_iou, tg_reward, tool_bonus, wer,
)
from vital_ray.rewards.parsing import split_span

EPS = 1e-4
TOOL_TRACE = ('<think>look closer</think><tool_call>{"name": "get_video_clip_frame", "arguments": '
              '{"start_time": 1, "end_time": 9}}</tool_call><think>seen</think>'
              "<answer>The event happens in the 20.00 - 30.00 seconds.</answer>")


def iou_of(inter, len_pred, len_gt):
    """VITAL's IoU by hand: eps on each length and on the union."""
    return inter / ((len_pred + EPS) + (len_gt + EPS) - inter + EPS)


# -- format ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    (TOOL_TRACE, 1.0),
    ("<think>a</think> \n <answer>B</answer>", 1.0),
    ("<think>思考 ✓</think>\u3000<answer>答案 B</answer>", 1.0),  # unicode text; U+3000 is whitespace
    ("<think><b>x</b></think><answer>A</answer>", 1.0),  # inner tags are inside the think block
    ("preamble <think>a</think><answer>B</answer> trailer", 1.0),  # VITAL only checks gaps between blocks
    ("<answer>B</answer>", 0.0),  # must start with think
    ("<tool_call>{}</tool_call><think>a</think><answer>B</answer>", 0.0),  # tool_call before think
    ("<think>a</think><think>b</think><answer>B</answer>", 0.0),  # same tag twice in a row
    ("<think>a</think><answer>B</answer><answer>C</answer>", 0.0),
    ("<think>a</think> junk <answer>B</answer>", 0.0),  # text between blocks
    ("<think>a</think><tool_call>{}</tool_call>", 0.0),  # must end with answer
    ("<think>a</think><foo>x</foo><answer>B</answer>", 0.0),  # unknown tag
    ("<think>a<answer>B</answer>", 0.0),  # unclosed think: first block is answer
    ("<think>a</think><answer>B", 0.0),
    ("", 0.0), ("no tags at all", 0.0), ("<<<>>>", 0.0),
])
def test_format_reward(text, want):
    assert format_reward(text) == want


def test_tag_blocks_match_vitals_regex():
    regex = re.compile(r"<(.*?)>(.*?)</\1>", re.DOTALL)
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "</tool_call>", "<b>", "</b>",
              "<", ">", "</", "a", " ", "\n", "<>", "</>"]
    rng = random.Random(0)
    compared = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        want = [(m.group(1), m.start(), m.end()) for m in regex.finditer(text)]
        if any("<" in tag or ">" in tag for tag, _, _ in want):
            continue  # the documented difference: "tags" that themselves span '<' or '>'
        assert list(tag_blocks(text)) == want, text
        compared += 1
    assert compared > 2500


@pytest.mark.timeout(30)  # a hang guard, not a speed target: VITAL's backtracking regex needs minutes here
def test_format_reward_finishes_on_angle_bracket_soup():
    texts = ("<a>" * 5000, "<" * 4000 + ">" * 4000, "<think>" + "x<y>z " * 3000 + "</think><answer>1</answer>")
    assert [format_reward(t) for t in texts] == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("n, want", [(0, 0.0), (1, 0.5), (2, 1.0), (5, 1.0), (-1, 0.0), (None, 0.0)])
def test_tool_bonus_is_capped(n, want):
    assert tool_bonus(n, RewardConfig()) == want


# -- temporal -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("from 3 to 5. Actually 10.5 - 20.25 seconds", (10.5, 20.25)),  # '.' does not split sentences
    ("10 - 20\n30 - 25", (10.0, 20.0)),  # the last pair is reversed, so the one before wins
    ("5 10 15\n20 30", (20.0, 30.0)),  # pairs never straddle a sentence break; 15 stays unpaired
    ("5 10 15 12", (5.0, 10.0)),
    ("what? 1 - 2! 3 - 4", (3.0, 4.0)),
    ("-5 to 10", (5.0, 10.0)),  # VITAL's regex has no sign
    ("30 - 20", None), ("nothing", None), ("", None), ("7", None),
])
def test_extract_time_range(text, want):
    assert extract_time_range(text) == want


def test_temporal_iou_by_hand():
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(iou_of(5, 10, 10), rel=1e-12)
    assert temporal_iou((20, 30), (20, 30)) == pytest.approx(iou_of(10, 10, 10), rel=1e-12)  # 0.99997
    assert temporal_iou((0, 1), (2, 3)) == 0.0
    assert temporal_iou(None, (2, 3)) == 0.0 and temporal_iou((2, 3), None) == 0.0
    assert temporal_iou((5, 3), (2, 6)) == 0.0  # reversed prediction
    assert temporal_iou((3, 3), (3, 3)) == 0.0  # zero-length spans never overlap
    huge = extract_time_range("0 - 1" + "0" * 400)  # 1e400 parses to inf
    assert huge == (0.0, math.inf) and temporal_iou(huge, (1, 2)) == 0.0
    assert temporal_iou((math.inf, math.inf), (1, 2)) == 0.0


def test_cut_iou():
    assert cut_iou(0.5, 0.2, 0.8) == pytest.approx(0.5)
    assert cut_iou(0.1, 0.2, 0.8) == 0.0 and cut_iou(0.9, 0.2, 0.8) == 1.0
    assert cut_iou(0.25, 0.0, 0.5) == pytest.approx(0.5)
    assert cut_iou(0.7, 0.0, 1.0) == 0.7
    with pytest.raises(ValueError):
        cut_iou(0.5, 0.8, 0.8)


@pytest.mark.parametrize("gt, want", [
    ([1, 2], (1.0, 2.0)), ((1.5, 2.5), (1.5, 2.5)), ("[1.0, 2.0]", (1.0, 2.0)), (" (1, 2) ", (1.0, 2.0)),
    ("The event happens in 1.0 - 2.0 seconds.", (1.0, 2.0)), ([3, 3], (3.0, 3.0)),
])
def test_parse_span(gt, want):
    assert parse_span(gt) == want


@pytest.mark.parametrize("gt", ["__import__('os').system('false')", "[2, 1]", "[1, 2, 3]", "[nan, 2]",
                                [float("nan"), 2.0], [1, math.inf], None, {"a": 1}, "", "no numbers", [1, "x"]])
def test_parse_span_rejects_without_eval(gt):
    with pytest.raises(MalformedSolution):
        parse_span(gt)


# -- answer-only kinds ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("The best answer is C.", "C"), ("Answer: B", "B"), ("(B) cat", "B"), ("The answer is: A", "A"),
    ("From the video, D", "D"), ("Best option: (E)", "E"), ("b", None), ("", None), ("é ü 日本", None),
])
def test_mcq_letter(text, want):
    assert mcq_letter(text) == want


def test_mcq_reward():
    assert mcq_reward("<think>x</think><answer>(B) cat</answer>", "B") == 1.0
    assert mcq_reward("<think>x</think><answer>b</answer>", "B") == 0.0  # lower case is no letter
    assert mcq_reward("the option is B", "B.") == 1.0  # no answer tag: the whole text is read
    assert mcq_reward("<think>I pick A</think><answer>C</answer>", "C") == 1.0
    with pytest.raises(MalformedSolution):
        mcq_reward("<answer>A</answer>", "")  # VITAL would match an empty prediction to it


@pytest.mark.parametrize("pred, gt, want", [
    ("<answer>about 3.14</answer>", "3.14", 1.0), ("3.2", "3.0", 0.5), ("5", "3", 0.0),
    ("3.04", 3, 1.0),  # equal at one decimal
    ("2.5", "2.0", 0.5),  # round(2.5) == 2 (half to even, as VITAL's Python)
    ("-3", "3", 0.0), ("-3", "-3", 1.0),  # VITAL read "-3" as 3
    ("1,234.5", 1234.5, 1.0), ("no number", "3", 0.0), ("9" * 400, "3", 0.0),
])
def test_numeric_reward(pred, gt, want):
    assert numeric_reward(pred, gt) == want


@pytest.mark.parametrize("gt", ["nan", "abc", None, 10 ** 400, True, [1]])
def test_numeric_rejects_bad_truth(gt):
    with pytest.raises(MalformedSolution):
        numeric_reward("3", gt)


@pytest.mark.parametrize("pred, gt, want", [
    ("90", "100", 0.9), ("110", "100", 0.9), ("300", "100", 0.0), ("-50", "-100", 0.5),
    ("1", "0", 0.0), ("0", "0", 1.0), ("0.0", 0, 1.0), ("none", "5", 0.0),
])
def test_regression_reward(pred, gt, want):
    assert regression_reward(pred, gt) == pytest.approx(want)


def test_rouge_by_hand():
    # tokens: the cat sat on the mat / the cat is on the mat -> R1 5/6, R2 3/5, RL (LCS 5) 5/6
    assert rouge_mean_f("the cat sat on the mat", "the cat is on the mat") == pytest.approx((5 / 6 + 3 / 5 + 5 / 6) / 3)
    assert rouge_mean_f("The cat, sat!", "the cat sat") == pytest.approx(1.0)  # case and punctuation ignored
    assert rouge_mean_f("running cats", "run cat") == pytest.approx(1.0)  # stemmed
    assert rouge_mean_f("generalization ponies", "generalizations pony") == pytest.approx(1.0)  # Porter, not suffix
    assert rouge_mean_f("", "the cat") == 0.0 and rouge_mean_f("日本語", "日本語") == 0.0  # non-ASCII drops out
    assert free_form_reward("<think>x</think><answer>the cat sat</answer>", "the cat sat") == pytest.approx(1.0)


def test_ocr_wer():
    assert wer("a b c", "a x c d") == pytest.approx(2 / 3)  # one substitution, one insertion
    assert wer("", "x y") == 2.0 and wer("", "") == 0.0  # VITAL's empty reference: divide by 1
    assert wer("a  b\tc", " a b c ") == 0.0  # whitespace split, as VITAL
    assert wer("hello there world", "hello world") == pytest.approx(1 / 3)
    assert ocr_reward("<answer>hello world</answer>", "hello there world") == pytest.approx(2 / 3)
    assert ocr_reward("Hello", "hello") == 0.0  # case-sensitive, as VITAL
    assert ocr_reward("a", "a b c d") == pytest.approx(0.25)
    assert ocr_reward("a b c d e", "a") == 0.0  # WER 4 clips to reward 0
    assert ocr_reward("", "") == 1.0


# -- grounded QA ----------------------------------------------------------------------------------------------

def test_grounded_truth_forms():
    want = ("C", (3.0, 6.0))
    for gt in ({"answer": "C", "span": [3, 6]}, ("C", [3, 6]), '{"answer": "C", "span": [3, 6]}',
               "['C', [3.0, 6.0]]"):
        truth = parse_grounded_truth(gt)
        assert (truth.answer, truth.span) == want
    truth = parse_grounded_truth("(C) 3.0 - 6.0 seconds")
    assert truth.span == (3.0, 6.0) and truth.answer == "(C)  seconds"
    assert split_span("C [3.0, 6.0]") == ("C []", (3.0, 6.0))
    for bad in ("C", {"answer": "C"}, "[3.0, 6.0]", 42, {"span": [3, 6]}):
        with pytest.raises(MalformedSolution):
            parse_grounded_truth(bad)


def test_gqa_pays_span_and_answer():
    text = "<think>x</think><answer>C, from 3.0 to 6.0</answer>"
    full = iou_of(3, 3, 3)
    assert gqa_reward(text, "C [3.0, 6.0]", free_form=False) == pytest.approx((0.5 * full + 0.5, full, 1.0))
    wrong = text.replace("C,", "A,")
    assert gqa_reward(wrong, "C [3.0, 6.0]", free_form=False)[0] == pytest.approx(0.5 * full)
    # weights (1, 0) reproduce VITAL's IoU-only reward
    assert gqa_reward(wrong, "C [3.0, 6.0]", False, iou_weight=1.0, answer_weight=0.0)[0] == pytest.approx(full)
    half = iou_of(3, 3, 6)  # just under 0.5
    term, iou, acc = gqa_reward(text, "C [3.0, 9.0]", False, alpha=0.2, beta=0.8)
    assert (iou, acc) == (pytest.approx(half), 1.0) and term == pytest.approx(0.5 * (half - 0.2) / 0.6 + 0.5)


def test_gqa_free_form_compares_answers_without_spans():
    text = "<think>x</think><answer>the man opens the door, 3.0 - 6.0</answer>"
    term, iou, acc = gqa_reward(text, "The man opens the door. [3.0, 6.0]", free_form=True)
    assert acc == pytest.approx(1.0) and iou == pytest.approx(iou_of(3, 3, 3))
    with pytest.raises(MalformedSolution):
        gqa_reward(text, {"answer": " ", "span": [3, 6]}, free_form=True)


# -- registry -------------------------------------------------------------------------------------------------

def test_tg_total_with_tool_bonus_and_cut():
    cfg = RewardConfig()
    r = score_response("synthetic/tg", TOOL_TRACE, [20.0, 30.0], 3, cfg)  # bonus capped at 2 calls
    assert r.error is None and r.correct
    assert r.components == pytest.approx({"format": 1.0, "tool": 1.0, "task": iou_of(10, 10, 10),
                                          "iou": iou_of(10, 10, 10)})
    assert r.total == pytest.approx(2.0 + iou_of(10, 10, 10))
    r = score_response("vidchapter", TOOL_TRACE, [20.0, 35.0], 0, cfg)  # iou 2/3 -> cut(0, 0.5) = 1
    assert r.components["task"] == 1.0 and r.correct
    r = score_response("charades_cutreward", TOOL_TRACE, "[20.0, 40.0]", 0, cfg)  # GT as a string
    assert r.components["task"] == pytest.approx((iou_of(10, 10, 20) - 0.2) / 0.6)
    assert not r.correct  # correct = R@0.5 on the raw IoU (0.49999)


def test_time_scope_answer_vs_vital_response_rule():
    think_only = "<think>maybe 1 - 2</think><answer>no idea</answer>"
    tool_only = '<think>x</think><tool_call>{"start_time": 1, "end_time": 2}</tool_call>'
    parity = RewardConfig(time_scope="response")
    for text in (think_only, tool_only):
        assert score_response("synthetic/tg", text, [1, 2], 0, RewardConfig()).components["iou"] == 0.0
        assert score_response("synthetic/tg", text, [1, 2], 0, parity).components["iou"] == pytest.approx(
            iou_of(1, 1, 1))
    assert tg_reward(think_only, [1, 2], scope="response")[1] == pytest.approx(iou_of(1, 1, 1))
    with pytest.raises(ValueError):
        tg_reward(think_only, [1, 2], scope="everything")


def test_weights_and_use_format():
    cfg = RewardConfig(format_weight=0.5)
    r = score_response("synthetic/mcq", "<think>x</think><answer>A</answer>", "A", 1, cfg)
    assert r.total == pytest.approx(0.5 + 0.5 + 1.0)
    cfg.tasks["plain"] = TaskSpec("mcq", use_format=False)
    r = score_response("plain", "<think>x</think><answer>A</answer>", "A", 2, cfg)
    assert r.total == 1.0 and r.components["format"] == 0.0 and r.components["tool"] == 0.0
    bad_format = score_response("synthetic/mcq", "<answer>A</answer>", "A", 1, RewardConfig())
    assert bad_format.components["format"] == 0.0 and bad_format.total == 1.5  # the bonus does not need format


@pytest.mark.parametrize("task, response, solution, total, correct", [
    ("video_r1/multiple_choice", "<think>x</think><answer>B</answer>", "B", 2.0, True),
    ("video_r1/numerical", "<think>x</think><answer>3.2</answer>", "3", 1.5, False),  # 0.5 is not correct
    ("video_r1/regression", "<think>x</think><answer>80</answer>", "100", 1.8, True),
    ("video_r1/free_form", "<think>x</think><answer>a cat</answer>", "a dog", 1 + (0.5 + 0 + 0.5) / 3, False),
    ("video_r1/OCR", "<think>x</think><answer>stop here</answer>", "stop", 1.0, False),  # WER 1
    ("nextgqa", "<think>x</think><answer>B 3 - 6</answer>", "B [3, 6]", 1.5 + 0.5 * iou_of(3, 3, 3), True),
    ("rextime", "<think>x</think><answer>a dog 3 - 6</answer>", {"answer": "a dog", "span": [3, 6]},
     1.5 + 0.5 * iou_of(3, 3, 3), True),
])
def test_every_kind_through_the_registry(task, response, solution, total, correct):
    r = score_response(task, response, solution, 0, RewardConfig())
    assert r.error is None and r.total == pytest.approx(total) and r.correct == correct
    assert {"format", "tool", "task"} <= set(r.components)


@pytest.mark.parametrize("task, solution, needle", [
    ("unknown/task", "B", "unknown task"), ("synthetic/tg", "not a span", "span"),
    ("synthetic/tg", [30, 20], "ends before"), ("synthetic/mcq", "", "letter"), ("video_r1/numerical", "abc", "number"),
    ("video_r1/regression", None, "number"), ("video_r1/free_form", None, "text"), ("video_r1/OCR", [1, 2], "text"),
    ("nextgqa", "C", "span"), ("rextime", object(), "grounded"),
])
def test_bad_inputs_are_error_results(task, solution, needle):
    r = score_response(task, TOOL_TRACE, solution, 1, RewardConfig())
    assert r.total == 0.0 and not r.correct and needle in r.error
    assert r.components == {"format": 0.0, "tool": 0.0, "task": 0.0}


def test_unknown_task_lists_known_ones_and_odd_inputs_do_not_crash():
    cfg = RewardConfig()
    assert "synthetic/tg" in score_response("nope", "x", "B", 0, cfg).error
    cfg.tasks["weird"] = TaskSpec("bogus")  # bypasses config validation
    assert "unknown kind" in score_response("weird", "x", "B", 0, cfg).error
    r = score_response("synthetic/tg", None, [1, 2], None, cfg)
    assert r.error is None and r.total == 0.0
    nan = score_response("synthetic/tg", "<think>x</think><answer>nan - inf</answer>", [1, 2], 0, cfg)
    assert nan.error is None and nan.components["iou"] == 0.0
    assert "ValueError" in score_response("synthetic/tg", "x", [1, 2], "many", cfg).error


def test_score_batch():
    cfg = RewardConfig()
    out = score_batch([("synthetic/mcq", "<think>x</think><answer>A</answer>", "A", 0),
                       {"task": "synthetic/mcq", "response": "<answer>B</answer>", "solution": "A"}], cfg)
    assert [r.total for r in out] == [2.0, 0.0]


# -- eval metrics ---------------------------------------------------------------------------------------------

def test_recall_and_mean_iou():
    ious = [0.2, 0.5, 0.8]
    assert recall_at(ious) == pytest.approx({"R@0.3": 2 / 3, "R@0.5": 2 / 3, "R@0.7": 1 / 3})
    assert recall_at([], thresholds=(0.5,)) == {"R@0.5": 0.0}
    assert mean_iou(ious) == pytest.approx(0.5) and mean_iou([]) == 0.0


def test_multi_span_iou_takes_the_best_span():
    spans = [[0, 2], [3, 6], [5, 9]]
    assert multi_span_iou((3, 6), spans) == pytest.approx(iou_of(3, 3, 3))
    assert multi_span_iou((3, 6), [3, 6]) == pytest.approx(iou_of(3, 3, 3))  # one bare span
    assert multi_span_iou((3, 6), []) == 0.0 and multi_span_iou(None, spans) == 0.0


def test_mra():
    assert mra_thresholds() == pytest.approx([0.5 + 0.05 * i for i in range(10)])
    # VITAL's/VSI-Bench's linspace(0.5, 0.95, int(0.45 / 0.05 + 2)) has 10 points in float64, not 11
    assert len(mra_thresholds(0.5, 0.95, 0.05)) == 10
    assert mra(105, 100) == 1.0
    assert mra(112, 100) == pytest.approx(0.8)  # rel 0.12 passes t <= 0.85
    assert mra(88, 100) == pytest.approx(0.8)
    assert mra(200, 100) == 0.0
    assert mra(112, 100, thresholds=[0.5 + 0.045 * i for i in range(11)]) == pytest.approx(9 / 11)
    assert mra(None, 5) == 0.0 and mra(float("nan"), 5) == 0.0
    assert mra(0, 0) == 1.0 and mra(3, 0) == 0.0
