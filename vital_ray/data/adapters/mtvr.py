"""VITAL's own JSON record format (MTVR training files and VITAL's eval files, docs/method.md §4, §5)."""

from __future__ import annotations

import os

from vital_ray.config import RewardConfig
from vital_ray.data.adapters.base import AdapterError, Collector, LoadResult, json_items
from vital_ray.data.records import RecordError, parse_record, solution_turns, source_for_file
from vital_ray.rewards.parsing import answer_text, extract_time_range

# reward kind of the record's data_source -> eval metric
KIND_TO_METRIC = {"tg": "tg", "mcq": "mcq", "gqa_mcq": "gqa", "gqa_free_form": "gqa_free", "numeric": "numeric",
                  "regression": "regression", "free_form": "free_form", "ocr": "ocr"}


def load_mtvr(annotation: str, data_root: str, on_bad: str = "skip", tasks: dict | None = None) -> LoadResult:
    """A JSON list of VITAL records. VITAL's eval files spell some fields differently (`question`, `answer`,
    `video_id`); they are accepted. The metric follows the data_source's reward kind (`reward.tasks`); a record
    without data_source takes its file name's (`vital_ray.data.records.FILE_SOURCES`). A record whose solution
    is its reasoning turns (MTVR_Tool_CoT) is scored against the answer of its last turn."""
    tasks = tasks if tasks is not None else RewardConfig().tasks
    col = Collector("mtvr", on_bad)
    root = data_root or os.path.dirname(os.path.abspath(annotation))
    for line, index, raw in json_items(annotation):
        where = f"{annotation}:{line}"

        def build(raw=raw, where=where, index=index):
            if not isinstance(raw, dict):
                raise AdapterError(f"{where}: record must be an object, got {type(raw).__name__}")
            row = dict(raw)
            for ours, theirs in (("text", "question"), ("solution", "answer"), ("video", "video_id")):
                if ours not in row and theirs in row:
                    row[ours] = row.pop(theirs)
            row.setdefault("id", f"{os.path.basename(annotation)}[{index}]")
            try:
                rec = parse_record(row, where, root, source_for_file(annotation) or "")
            except RecordError as e:
                raise AdapterError(str(e)) from None
            spec = tasks.get(rec.data_source)
            if spec is None:
                raise AdapterError(f"{where}: unknown data_source {rec.data_source!r} (not in reward.tasks)")
            turns = solution_turns(rec.solution)
            if turns is not None:
                rec.extra["turns"], rec.solution = turns, _final_answer(turns, spec.kind, where)
            rec.extra.update(metric=KIND_TO_METRIC[spec.kind], question_type=str(row.get("question_type") or ""))
            return rec
        col.add(where, build)
    return col.result


def _final_answer(turns: list[str], kind: str, where: str):
    """The ground truth a list of turns states: its last `<answer>` (a [start, end] span for grounding)."""
    answer = answer_text(turns[-1])
    if answer is None:
        raise AdapterError(f"{where}: the last solution turn has no <answer>")
    if kind != "tg":
        return answer.strip()
    span = extract_time_range(answer)
    if span is None:
        raise AdapterError(f"{where}: the last solution turn's answer {answer!r} holds no time span")
    return list(span)
