"""Tool-call parser and VITAL record loading: every malformed case is explicit."""

import json

import pytest

from vital_ray.data.records import RecordError, load_records
from vital_ray.tools.parser import extract_answer, parse_turn

CALL = '<tool_call>{"name": "get_video_clip_frame", "arguments": {"start_time": 1.5, "end_time": 4}}</tool_call>'


def test_tool_call_parsed_with_or_without_newlines():
    spaced = CALL.replace("<tool_call>", "<tool_call>\n").replace("</tool_call>", "\n</tool_call>")
    for text in ("<think>x</think>" + CALL, "<think>x</think>\n" + spaced + "\n"):
        p = parse_turn(text)
        assert p.kind == "tool" and p.name == "get_video_clip_frame" and p.arguments["start_time"] == 1.5


@pytest.mark.parametrize("text, msg", [
    ("<tool_call>{not json}</tool_call>", "not valid JSON"),
    ('<tool_call>{"arguments": {}}</tool_call>', '"name"'),
    ('<tool_call>{"name": "x", "arguments": [1]}</tool_call>', '"arguments"'),
    ('<tool_call>{"name": "x", "arguments": {"start_time": NaN}}</tool_call>', "non-finite"),
    ('<tool_call>{"name": "x"', "unclosed"),
    ("just text", "parse failed"),
    ("", "parse failed"),
])
def test_malformed_turns_are_errors(text, msg):
    p = parse_turn(text)
    assert p.kind == "error" and msg in p.error


def test_tool_call_wins_over_answer_and_extra_calls_are_counted():
    p = parse_turn(f"{CALL}<answer>B</answer>{CALL}")
    assert p.kind == "tool" and p.extra_calls == 1
    assert parse_turn("<think>a</think><answer> B </answer>").answer == "B"
    assert extract_answer("<answer>A</answer> then <answer>C</answer>") == "C"


def test_records_loader_reports_file_index_and_field(tmp_path, synthetic):
    video = synthetic[0][0].video
    rows = [
        {"id": "ok", "video": video, "duration": 60, "problem": "q?", "solution": [1, 2], "data_source": "charades"},
        {"id": "noduration", "video": video, "text": "q", "solution": "A", "data_source": "charades"},
        {"id": "inverted", "video": video, "duration": 60, "text": "q", "solution": [5, 2], "data_source": "charades"},
        {"id": "missingvideo", "video": "nope.mp4", "duration": 60, "text": "q", "solution": "A",
         "data_source": "charades"},
        {"id": "baddur", "video": video, "duration": "long", "text": "q", "solution": "A", "data_source": "charades"},
        "not an object",
    ]
    path = tmp_path / "recs.json"
    path.write_text(json.dumps(rows))
    recs, errors = load_records(str(path))
    assert [r.id for r in recs] == ["ok"] and recs[0].text == "q?"
    assert len(errors) == 5
    assert "[1]: missing field 'duration'" in errors[0] and "[2]" in errors[1] and "start < end" in errors[1]
    assert "video not found" in errors[2] and "'duration' must be a number" in errors[3]
    with pytest.raises(RecordError, match=r"recs.json\[1\]"):
        load_records(str(path), on_bad="fail")
    path.write_text("{broken")
    with pytest.raises(RecordError, match="not valid JSON"):
        load_records(str(path))


def test_synthetic_records_roundtrip(synthetic):
    records, json_path = synthetic
    again, errors = load_records(json_path)
    assert not errors and [r.id for r in again] == [r.id for r in records]
    assert {r.data_source for r in records} == {"synthetic/tg", "synthetic/mcq"}
    mcq = next(r for r in records if r.data_source == "synthetic/mcq")
    assert mcq.solution in "ABCD" and "Options:" in mcq.text
