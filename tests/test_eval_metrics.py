"""Benchmark metrics on hand-built predictions; expected values worked out by hand in the comments."""

import pytest

from vital_ray.evaluation.metrics import aggregate, iou_auc, score_sample, span_iou, span_set_iou, summary_table
from vital_ray.evaluation.official import iop as span_iop
from vital_ray.rewards.parsing import MalformedSolution


def ans(text):
    return f"<think>...</think><answer>{text}</answer>"


def rows(metric, items, **extra):
    return [{**score_sample(metric, resp, sol), "metric": metric, **extra} for resp, sol in items]


def test_plain_iou_counts_an_exact_half_and_iop_divides_by_the_prediction():
    assert span_iou((0, 5), (0, 10)) == 0.5  # no epsilon: R@0.5 must count it
    assert span_iou((5, 15), (0, 10)) == pytest.approx(1 / 3)
    assert span_iou((3, 3), (3, 3)) == 0.0 and span_iou(None, (0, 1)) == 0.0
    assert span_iop((2, 6), (0, 10)) == 1.0 and span_iop((15, 35), (10, 20)) == 0.25
    assert span_iop((4, 4), (0, 10)) == 1.0 and span_iop((12, 12), (0, 10)) == 0.0  # NExT-GQA's point rule


def test_grounding_miou_and_recall():
    r = rows("tg", [(ans("The event happens in the 0 - 10 seconds."), [0, 10]),   # IoU 1
                    (ans("The event happens in the 5.0 - 15.0 seconds."), [0, 10]),  # 5 / 15 = 1/3
                    (ans("The event happens in the 0 - 5 seconds."), [0, 10]),   # 5 / 10 = 0.5
                    ("I think 2 - 8 but no answer block", [0, 10])])              # nothing in <answer>: 0
    m = aggregate("grounding", r)
    assert m["mIoU"] == pytest.approx((1 + 1 / 3 + 0.5 + 0) / 4)
    assert (m["R@0.3"], m["R@0.5"], m["R@0.7"]) == (0.75, 0.5, 0.25)
    assert r[1]["pred"] == [5.0, 15.0] and r[3]["pred"] is None


def test_nextgqa_acc_gqa_iop_iou_over_several_gt_spans():
    r = rows("gqa", [
        (ans("B, 2 - 6 seconds"), {"answer": "B", "span": [0, 10], "spans": [[0, 10], [20, 30]]}),  # IoU .4, IoP 1
        (ans("A, 15 - 35"), {"answer": "A", "span": [10, 20]}),  # right; IoU 5/25 = .2, IoP 5/20 = .25
        (ans("C, 10 - 20"), {"answer": "D", "span": [10, 20]}),  # wrong letter; IoU 1, IoP 1
    ])
    assert r[1]["pred"] == {"answer": "A", "span": [15.0, 35.0]}
    m = aggregate("nextgqa", r)
    assert m["Acc@QA"] == pytest.approx(2 / 3)
    assert m["Acc@GQA"] == pytest.approx(1 / 3)  # only the first: right AND IoP >= 0.5
    assert m["mIoP"] == pytest.approx((1 + 0.25 + 1) / 3)
    assert (m["IoP@0.3"], m["IoP@0.5"]) == pytest.approx((2 / 3, 2 / 3))
    assert m["mIoU"] == pytest.approx((0.4 + 0.2 + 1) / 3)
    assert (m["IoU@0.3"], m["IoU@0.5"]) == pytest.approx((2 / 3, 1 / 3))


def test_rextime_accuracy_miou_recall_and_acc_at_iou():
    r = rows("gqa", [(ans("A. 0 - 6"), {"answer": "A", "span": [0, 10]}),    # right, IoU .6
                     (ans("B. 4 - 12"), {"answer": "B", "span": [0, 8]}),    # right, IoU 4/12
                     (ans("C. 3 - 4"), {"answer": "D", "span": [3, 4]})])    # wrong, IoU 1
    m = aggregate("rextime", r)
    assert m["Acc"] == pytest.approx(2 / 3) and m["mIoU"] == pytest.approx((0.6 + 1 / 3 + 1) / 3)
    assert (m["R@0.3"], m["R@0.5"], m["R@0.7"]) == pytest.approx((1, 2 / 3, 1 / 3))
    assert (m["Acc@IoU0.3"], m["Acc@IoU0.5"], m["Acc@IoU0.7"]) == pytest.approx((2 / 3, 1 / 3, 0))


def test_mcq_accuracy_with_a_per_type_breakdown():
    r = (rows("mcq", [(ans("The answer is C"), "C"), (ans("B. Candles."), "C")], question_type="Counting")
         + rows("mcq", [(ans("(A)"), "A"), ("A", "A")], question_type="OCR"))  # no <answer>: whole text (VITAL)
    m = aggregate("qa", r)
    assert m == {"Acc": 0.75, "Acc/Counting": 0.5, "Acc/OCR": 1.0}


def test_vsibench_mra_and_lmms_eval_aggregation():
    r = (rows("mra", [(ans("4.5"), "4")], question_type="object_counting")         # rel. err .125 -> 8/10 = .8
         + rows("mra", [(ans("23.5 m2"), "23.5")], question_type="room_size_estimation")  # exact: 1
         + rows("mcq", [(ans("A"), "A")], question_type="object_rel_direction_easy")       # 1
         + rows("mcq", [(ans("A"), "C")], question_type="object_rel_direction_hard"))      # 0
    assert r[0]["score"] == pytest.approx(0.8)
    m = aggregate("vsibench", r)
    assert m["object_rel_direction/Acc"] == 0.5  # the difficulties averaged into one type
    assert m["object_counting/MRA"] == pytest.approx(0.8) and m["room_size_estimation/MRA"] == 1.0
    assert m["overall"] == pytest.approx((0.8 + 1.0 + 0.5) / 3)


def test_vuetr_multi_span_iou_and_auc():
    r = rows("tg_multi", [(ans("12.2 - 19.5, 24 - 28.4"), [[12, 19], [24, 29]]),  # floor/ceil -> 12/13
                          (ans("0 - 16"), [[0, 32]])])                              # 16/32 = .5
    assert r[0]["iou"] == pytest.approx(12 / 13) and r[0]["pred"] == [[12, 20], [24, 29]]
    assert span_set_iou([], []) == 1.0 and span_set_iou([(1, 2)], []) == 0.0
    assert span_set_iou([(0, 4), (2, 6)], [(0, 6)]) == 1.0  # overlapping predictions merged first
    # success(t) = 1 for t < .5, .5 for .5 <= t < 1, 0 at 1 (IoU > t): trapezoids on 0.01 steps ->
    # .49 + .0075 + .245 + .0025 = .745
    assert iou_auc([0.5, 1.0]) == pytest.approx(0.745)
    assert aggregate("vuetr", r)["IoU-AUC"] == pytest.approx(iou_auc([12 / 13, 0.5]))


def test_open_ended_answers_without_a_judge_use_vitals_mra_on_the_first_number():
    assert score_sample("open", ans("about 45 seconds"), "40")["score"] == pytest.approx(0.8)  # err .125
    assert score_sample("open", ans("no idea"), "40")["score"] == 0.0
    assert score_sample("open", ans("depth first search"), "Depth-First Search")["score"] == 0.0  # no number: 0


def test_reward_kinds_and_malformed_ground_truth():
    assert score_sample("numeric", ans("3.0"), "3", scoring="vital")["score"] == 1.0
    assert score_sample("numeric", ans("3.0"), "3")["score"] == 0.0  # Video-R1: "3.0" has a decimal, "3" none
    assert score_sample("regression", ans("5"), "4", scoring="vital")["score"] == pytest.approx(0.75)
    # Video-R1: rel. error 1 / (4 + 1e-8), just under .25, < 1 - t for t in .50 .. .75: 6 of 10
    assert score_sample("regression", ans("5"), "4")["score"] == pytest.approx(0.6)
    with pytest.raises(MalformedSolution):
        score_sample("mcq", ans("A"), "?")
    with pytest.raises(MalformedSolution):
        score_sample("tg", ans("1 - 2"), "[oops]")
    with pytest.raises(ValueError, match="unknown metric"):
        score_sample("bleu", "x", "y")


def test_summary_table_in_percent():
    table = summary_table({"charades": {"n": 3, "mIoU": 0.61111, "R@0.5": 0.5}, "videomme": {"n": 2, "Acc": 0.75}})
    assert table.splitlines() == ["| benchmark | n | mIoU | R@0.5 | Acc |", "|---|---|---|---|---|",
                                  "| charades | 3 | 61.1 | 50.0 |  |", "| videomme | 2 |  |  | 75.0 |"]
