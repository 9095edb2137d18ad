"""VITAL's record format (docs/method.md §4.1): JSON lists with `video`, `duration`, `text`/`problem`, `solution`,
`data_source`, optional `video_kwargs`, `tool_params`, `answer`. Bad records are reported with file, index and
field; they are skipped (or fail the load with `on_bad="fail"`), never silently lost.

MTVR as published (docs/real-data.md):
- `solution` is a string, a list of assistant turns, or the Python repr of such a list (MTVR_Tool_CoT); the repr
  is read with `ast.literal_eval`, never `eval`, and kept as the list of turns.
- `data_source` may be absent (MTVR_Tool_CoT, MTVR_CoT). It is then, in this order: the file's configured
  source (`data.files[].data_source`), else derived from the file name by `FILE_SOURCES` (the first key found
  in the lower-cased file name: `vidchapters.json` -> `vidchapter`); a file matching no key is an error.
  `per_record` makes every record name its own (files that mix tasks).
- `tool_params` "[s, e]" must be a span inside the video; `video_kwargs` keys `VIEW_KWARGS` override the global
  view for that record (`parallel` is a decoding hint of VITAL's loader and is ignored).
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

KNOWN = {"id", "video", "duration", "text", "problem", "solution", "data_source", "video_kwargs", "tool_params",
         "answer", "question_type"}
# file-name key -> data_source (reward.tasks), checked in this order; longvideo-reason is scored as Video-R1 MCQ
FILE_SOURCES = (("vidchapter", "vidchapter"), ("charades", "charades"), ("actnet", "actnet"),
                ("activitynet", "actnet"), ("nextgqa", "nextgqa"), ("next_gqa", "nextgqa"), ("rextime", "rextime"),
                ("longvideo-reason", "video_r1/multiple_choice"), ("longvideo_reason", "video_r1/multiple_choice"))
PER_RECORD = "per_record"  # a file's data_source setting: no fallback, each record names its own
VIEW_KWARGS = {"max_pixels": int, "min_pixels": int, "max_frames": int, "fps": float}
IGNORED_KWARGS = {"parallel"}
_TURNS_MAX_CHARS = 2_000_000  # a repr-string of turns larger than this is not an MTVR record


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


def source_for_file(path: str) -> str | None:
    """The data_source `FILE_SOURCES` gives the file name of `path`, or None."""
    name = os.path.basename(path).lower()
    return next((source for key, source in FILE_SOURCES if key in name), None)


def solution_turns(solution, where: str = "solution") -> list[str] | None:
    """The assistant turns of a list-of-strings solution or of its Python repr; None for any other solution.
    A string that starts like a list of strings but does not parse is an error (a damaged MTVR record)."""
    if isinstance(solution, str) and solution.lstrip().startswith(("['", '["')):
        if len(solution) > _TURNS_MAX_CHARS:
            raise RecordError(f"{where}: field 'solution' is a {len(solution)}-character repr of turns")
        try:
            solution = ast.literal_eval(solution.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            raise RecordError(f"{where}: field 'solution' looks like a list of turns but does not parse "
                              f"({type(e).__name__})") from None
    if isinstance(solution, (list, tuple)) and solution and all(isinstance(t, str) for t in solution):
        return list(solution)
    return None


def tool_window(value, duration: float, where: str) -> tuple[float, float]:
    """`tool_params` "[s, e]" (or a list) -> (s, e) with 0 <= s < e <= duration (+1 s of rounding slack)."""
    pair = value
    if isinstance(value, str):
        try:
            pair = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            pair = None
    ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in pair)
    if not ok or not 0 <= pair[0] < pair[1] <= duration + 1.0:
        raise RecordError(f"{where}: field 'tool_params' must be '[start, end]' with 0 <= start < end <= duration "
                          f"({duration}), got {value!r}")
    return float(pair[0]), float(pair[1])


def view_kwargs(value, where: str) -> dict:
    """A record's `video_kwargs` -> the global-view overrides it asks for (`VIEW_KWARGS`), checked."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{where}: field 'video_kwargs' must be an object, got {value!r}")
    out = {}
    for key, v in value.items():
        if key in IGNORED_KWARGS:
            continue
        kind = VIEW_KWARGS.get(key)
        if kind is None:
            raise RecordError(f"{where}: video_kwargs key {key!r} is not one of {sorted(VIEW_KWARGS)} "
                              f"(or the ignored {sorted(IGNORED_KWARGS)})")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise RecordError(f"{where}: video_kwargs.{key} must be a positive number, got {v!r}")
        out[key] = kind(v)
    return out


def parse_record(raw: dict, where: str, video_root: str = "", data_source: str = "") -> Record:
    """One record; `data_source` is the file's source, used when the record has none (module docstring)."""
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
    turns = solution_turns(raw["solution"], where)
    tool_params = raw.get("tool_params")
    if tool_params not in (None, ""):
        tool_window(tool_params, duration, where)
    source = str(raw.get("data_source") or data_source)
    if not source:
        raise RecordError(f"{where}: no data_source: the record has none and its file name matches none of "
                          f"{[k for k, _ in FILE_SOURCES]}; set data.files[].data_source for this file")
    video = raw["video"] if os.path.isabs(raw["video"]) else os.path.join(video_root, raw["video"])
    return Record(
        id=str(raw.get("id", where)), video=os.path.abspath(video), duration=duration, text=text,
        solution=turns if turns is not None else raw["solution"], data_source=source,
        video_kwargs=view_kwargs(raw.get("video_kwargs"), where), tool_params=tool_params or None,
        answer=raw.get("answer"), extra={k: v for k, v in raw.items() if k not in KNOWN},
    )


def load_records(path: str, video_root: str = "", on_bad: str = "skip",
                 data_source: str = "") -> tuple[list[Record], list[str]]:
    """-> (records, errors). Missing video files are errors too (reported, skipped). `data_source`: the
    source of records that carry none (default: from the file name, `source_for_file`)."""
    data_source = "" if data_source == PER_RECORD else data_source or source_for_file(path) or ""
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
            rec = parse_record(raw, where, video_root or os.path.dirname(path), data_source)
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
