"""VITAL's record format (spec 5.3): JSON lists with `video`, `duration`, `text`/`problem`, `solution`,
`data_source`, optional `video_kwargs`, `tool_params`, `answer`. Bad records are reported with file, index and
field; they are skipped (or fail the load with `on_bad="fail"`), never silently lost."""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

KNOWN = {"id", "video", "duration", "text", "problem", "solution", "data_source", "video_kwargs", "tool_params",
         "answer", "question_type"}


class RecordError(ValueError):
    pass


@dataclass
class Record:
    id: str
    video: str  # absolute path
    duration: float
    text: str
    solution: Any
    data_source: str
    video_kwargs: dict = field(default_factory=dict)
    tool_params: str | None = None
    answer: str | None = None
    extra: dict = field(default_factory=dict)


def _tg_span(solution) -> tuple[float, float] | None:
    sol = solution
    if isinstance(sol, str):
        try:
            sol = ast.literal_eval(sol)
        except (ValueError, SyntaxError):
            return None
    if isinstance(sol, (list, tuple)) and len(sol) == 2 and all(isinstance(x, (int, float)) for x in sol):
        return float(sol[0]), float(sol[1])
    return None


def parse_record(raw: dict, where: str, video_root: str = "") -> Record:
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: record must be an object, got {type(raw).__name__}")
    for key in ("video", "duration", "solution"):
        if key not in raw:
            raise RecordError(f"{where}: missing field '{key}'")
    text = raw.get("text", raw.get("problem"))
    if not isinstance(text, str) or not text.strip():
        raise RecordError(f"{where}: missing field 'text' (or 'problem')")
    try:
        duration = float(raw["duration"])
    except (TypeError, ValueError):
        raise RecordError(f"{where}: field 'duration' must be a number, got {raw['duration']!r}") from None
    if not math.isfinite(duration) or duration <= 0:
        raise RecordError(f"{where}: field 'duration' must be positive, got {raw['duration']!r}")
    span = _tg_span(raw["solution"])
    if span is not None and (span[0] < 0 or span[0] >= span[1]):
        raise RecordError(f"{where}: field 'solution' span {list(span)} needs 0 <= start < end")
    if not isinstance(raw["video"], str) or not raw["video"]:
        raise RecordError(f"{where}: field 'video' must be a path")
    video = raw["video"] if os.path.isabs(raw["video"]) else os.path.join(video_root, raw["video"])
    return Record(
        id=str(raw.get("id", where)), video=os.path.abspath(video), duration=duration, text=text,
        solution=raw["solution"], data_source=str(raw.get("data_source", "")),
        video_kwargs=dict(raw.get("video_kwargs") or {}), tool_params=raw.get("tool_params"),
        answer=raw.get("answer"), extra={k: v for k, v in raw.items() if k not in KNOWN},
    )


def load_records(path: str, video_root: str = "", on_bad: str = "skip") -> tuple[list[Record], list[str]]:
    """-> (records, errors). Missing video files are errors too (reported, skipped)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RecordError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise RecordError(f"{path}: expected a JSON list of records")
    records, errors = [], []
    for i, raw in enumerate(data):
        where = f"{path}[{i}]"
        try:
            rec = parse_record(raw, where, video_root or os.path.dirname(path))
            if not os.path.exists(rec.video) and not os.path.isdir(os.path.splitext(rec.video)[0]):
                raise RecordError(f"{where}: video not found: {rec.video}")
            records.append(rec)
        except RecordError as e:
            if on_bad == "fail":
                raise
            errors.append(str(e))
    return records, errors


def save_records(records: list[Record], path: str) -> None:
    rows = []
    for r in records:
        row = {k: v for k, v in asdict(r).items() if k != "extra" and v not in (None, {})}
        rows.append({**row, **r.extra})
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)
