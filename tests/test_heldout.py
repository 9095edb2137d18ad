"""The held-out table: its metrics from prediction rows, the markdown it prints and the PNG it draws."""

import json

from pipelines.heldout import row_metrics, table, write_report


def _row(metric="mcq", correct=None, pred='"A"', calls=1, ok=1, iou=None):
    return {"metric": metric, "correct": correct, "pred": pred, "tool_calls": calls, "tool_ok": ok, "iou": iou}


def test_row_metrics_shares_and_counts():
    rows = [_row(correct=1.0), _row(correct=0.0, calls=2, ok=1), _row(correct=None, pred="null", calls=0, ok=0),
            _row("tg", iou=0.6, calls=1, ok=0), _row("tg", iou=None, pred="null", calls=0, ok=0)]
    m = row_metrics(rows)
    assert m["n"] == 5 and m["accuracy"] == 1 / 3  # unanswered choice rows count as wrong
    assert m["iou"] == 0.3 and m["r@0.5"] == 0.5
    assert m["answered"] == 3 / 5 and m["tool_calls_per_answer"] == 4 / 3 and m["tool_success"] == 2 / 4
    none = row_metrics([_row(correct=0.0, calls=0, ok=0)])
    assert none["iou"] is None and none["tool_success"] is None and none["tool_calls_per_answer"] == 0.0


def test_report_files(tmp_path):
    res = {"base tools on": row_metrics([_row(correct=0.0, calls=0, ok=0)]),
           "sft tools on": row_metrics([_row(correct=1.0)])}
    text = table(res)
    assert "| sft tools on | 1 | 100.0 |  |  | 100.0 | 1.00 | 100.0 |" in text
    write_report(str(tmp_path), res, "held.json")
    assert json.loads((tmp_path / "eval.json").read_text())["results"] == res
    assert text in (tmp_path / "eval.md").read_text()
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"
