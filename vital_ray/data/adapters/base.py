"""What every benchmark adapter shares: reading rows with their line numbers, resolving videos, probing
durations, and collecting bad rows as errors that name the file and line (or parquet row).

An adapter turns one dataset's public annotation format into `Record`s (the training record type). Eval fields
ride in `Record.extra`: `benchmark`, `metric` (how one sample is scored, `vital_ray.evaluation.metrics`),
`question_type` (the breakdown key) and any dataset metadata worth keeping in the predictions file.
"""

from __future__ import annotations

import csv
import functools
import glob
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from vital_ray.data.records import Record, RecordError

VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Prompt wording: the TG sentence is VITAL's answer format (docs/method.md §4.1), the MCQ tail the usual letter instruction.
TG_PROMPT = (
    "Give the query: '{query}', when does the described content occur in the video? Please return its start "
    "time and end time. Answer in the format 'The event happens in the start time - end time'. For example, "
    "'The event happens in the 24.30 - 30.42 seconds.'"
)
TG_MULTI_PROMPT = (
    "Give the query: '{query}', find every time range of the video where the described content occurs. "
    "Answer with the ranges as 'start - end' in seconds, separated by commas, e.g. '3.00 - 8.50, 20.00 - 24.10'."
)
MCQ_PROMPT = "{question}\nOptions:\n{options}\nAnswer with the option's letter from the given choices directly."
GQA_PROMPT = (
    "{question}\nOptions:\n{options}\nAnswer with the option's letter, and give the start and end time (in "
    "seconds) of the video segment that supports the answer, e.g. 'B, 12.50 - 20.00 seconds'."
)
GQA_NO_OPTIONS_PROMPT = (
    "{question}\nAnswer, and give the start and end time (in seconds) of the video segment that supports the "
    "answer, e.g. '12.50 - 20.00 seconds'."
)
NUMBER_PROMPT = "{question}\nPlease answer the question using a single number."
OPEN_PROMPT = "{question}\nPlease answer the question with a single word or phrase."


class AdapterError(RecordError):
    """A malformed annotation row; the message starts with `file:line` (or `file:row N` for parquet)."""


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # every skipped row, with file and line
    missing_videos: list[str] = field(default_factory=list)  # video paths not found (also in `errors`)
    notes: list[str] = field(default_factory=list)  # rows loaded with a caveat (e.g. ReXTime rows without options)


def options_block(options: Iterable[str]) -> str:
    """'A. x\\nB. y'; options already lettered ('A. x', 'A) x') are kept as they are."""
    out = []
    for i, opt in enumerate(options):
        opt = str(opt).strip()
        lettered = len(opt) > 1 and opt[0] in LETTERS and opt[1] in ".):"
        out.append(opt if lettered else f"{LETTERS[i]}. {opt}")
    return "\n".join(out)


def json_items(path: str) -> Iterator[tuple[int, Any, Any]]:
    """(line, key or index, value) for each top-level item of a JSON list or object, or of a JSON-lines file.

    Line numbers come from the decoder's position, so an error can point at the record in the file."""
    text = _read_text(path)
    if path.endswith(".jsonl") or _looks_like_jsonl(text):
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield n, n - 1, json.loads(line)
                except json.JSONDecodeError as e:
                    raise AdapterError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        return
    dec = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] not in "[{":
        raise AdapterError(f"{path}:1: expected a JSON list or object")
    is_list, pos, index = text[pos] == "[", pos + 1, 0
    while True:
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] in "]}":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            if is_list:
                key = index
            else:
                key, pos = dec.raw_decode(text, pos)
                pos = _skip_ws(text, pos)
                if text[pos] != ":":
                    raise json.JSONDecodeError("expected ':'", text, pos)
                pos = _skip_ws(text, pos + 1)
            value, pos = dec.raw_decode(text, pos)
        except (json.JSONDecodeError, IndexError) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "unexpected end of file"
            err_line = text.count("\n", 0, e.pos) + 1 if isinstance(e, json.JSONDecodeError) else line
            raise AdapterError(f"{path}:{err_line}: not valid JSON ({msg})") from None
        yield line, key, value
        index += 1
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1


def table_rows(path: str) -> Iterator[tuple[str, dict]]:
    """(where, row) for Parquet (`file:row N`, 0-based as pandas shows), CSV (`file:line`) and JSON/JSONL files."""
    if not os.path.exists(path):
        raise AdapterError(f"{path}: file not found")
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise AdapterError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
        for i, row in enumerate(rows):
            yield f"{path}:row {i}", row
    elif path.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield f"{path}:{reader.line_num}", row
    else:
        for line, _, row in json_items(path):
            yield f"{path}:{line}", row


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise AdapterError(f"{path}: file not found") from None


def _looks_like_jsonl(text: str) -> bool:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    try:
        return isinstance(json.loads(first), dict) and first.strip() != text.strip()
    except json.JSONDecodeError:
        return False


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def need(row: dict, key: str, where: str, kind: type | tuple = object) -> Any:
    """row[key], or an AdapterError naming the file, line and field."""
    if not isinstance(row, dict):
        raise AdapterError(f"{where}: record must be an object, got {type(row).__name__}")
    if key not in row or row[key] is None or row[key] == "":
        raise AdapterError(f"{where}: missing field '{key}'")
    if not isinstance(row[key], kind):
        raise AdapterError(f"{where}: field '{key}' must be {_kind_name(kind)}, got {row[key]!r}")
    return row[key]


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def number(value, where: str, name: str) -> float:
    """A finite number (the clip tool's argument check), or an AdapterError naming file, line and field."""
    from vital_ray.tools.clip_tool import _as_time

    try:
        return _as_time(f"field '{name}'", value)
    except ValueError as e:
        raise AdapterError(f"{where}: {e}") from None


SPAN_SLACK_S = 1.0  # published spans run up to this far outside the video (NExT-GQA -0.2 s, ReXTime 130 > 129.96)


def span(value, where: str, name: str, duration: float | None = None) -> list[float]:
    """A published [start, end] pair, kept as published: start <= end (zero-length spans are real: ReXTime
    [1, 1]), start >= -1 s and start before the video's end (1 s of rounding slack each way). The official
    scripts score such spans unchanged, so they are neither dropped nor clipped."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise AdapterError(f"{where}: field '{name}' must be a [start, end] pair, got {value!r}")
    s, e = number(value[0], where, name), number(value[1], where, name)
    if s > e:
        raise AdapterError(f"{where}: field '{name}' span [{s}, {e}] ends before it starts")
    if s < -SPAN_SLACK_S:
        raise AdapterError(f"{where}: field '{name}' span [{s}, {e}] starts {-s} s before the video")
    if duration is not None and s >= duration + SPAN_SLACK_S:
        raise AdapterError(f"{where}: field '{name}' span [{s}, {e}] starts after the video ends ({duration} s)")
    return [s, e]


def letter_of(answer, options: list, where: str) -> str:
    """The option letter of an answer given as a letter, an index, or the option's text."""
    n = len(options)
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < n:
        return LETTERS[answer]
    text = str(answer).strip()
    if len(text) == 1 and text.upper() in LETTERS[:max(n, 1)]:
        return text.upper()
    if text.isdigit() and int(text) < n:
        return LETTERS[int(text)]
    stripped = [str(o).strip() for o in options]
    for i, opt in enumerate(stripped):
        if text == opt or (len(opt) > 2 and opt[0] in LETTERS and opt[1] in ".):" and opt[2:].strip() == text):
            return LETTERS[i]
    raise AdapterError(f"{where}: answer {answer!r} is not one of the {n} options")


def find_video(root: str, *names: str) -> str:
    """The one video that `names` (paths under root, tried in order) point at: a name without an extension is
    tried with each of VIDEO_EXTS, and extensions match in any case (`.MP4`); a VITAL frame directory (the path
    without its extension) counts as the video. Two different videos found is an AdapterError naming both
    (never a silent pick); none found returns the first candidate, which the collector reports as missing."""
    candidates = []
    for name in names:
        path = name if os.path.isabs(name) else os.path.join(root, name)
        has_ext = os.path.splitext(path)[1].lower() in VIDEO_EXTS
        candidates += [path] if has_ext else [path + e for e in VIDEO_EXTS]
    files: dict[str, str] = {}
    dirs: dict[str, str] = {}
    for path in candidates:
        hit = _existing_file(path)
        if hit:
            files.setdefault(os.path.realpath(hit), hit)
        elif os.path.isdir(os.path.splitext(path)[0]):
            dirs.setdefault(os.path.realpath(os.path.splitext(path)[0]), path)
    stems = {os.path.splitext(f)[0] for f in files}
    found = list(files.values()) + [p for real, p in dirs.items() if real not in stems]
    if len(found) > 1:
        raise AdapterError(f"ambiguous video: {len(found)} candidates match ({', '.join(sorted(found))}); keep one "
                           "of them or give the exact path")
    return os.path.abspath(found[0] if found else candidates[0])


def _existing_file(path: str) -> str | None:
    """`path` if it is a file, else the file of that name in another letter case (`x.MP4` for `x.mp4`)."""
    if os.path.isfile(path):
        return path
    folder, base = os.path.split(path)
    match = _folder_index(folder).get(base.lower())
    return os.path.join(folder, match) if match else None


def _folder_index(folder: str) -> dict[str, str]:
    try:
        stamp = os.stat(folder).st_mtime_ns
    except OSError:
        return {}
    return _listing(folder, stamp)


@functools.lru_cache(maxsize=256)
def _listing(folder: str, stamp: int) -> dict[str, str]:
    """Lower-cased name -> name of a folder's files (cached per folder version: a benchmark asks once per row)."""
    out: dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        out.setdefault(name.lower(), name)
    return out


def subfolders(root: str, pattern: str) -> list[str]:
    """Folders under root matching a glob pattern (e.g. the shard folders `longvideo_eval_subset*`), relative."""
    return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, pattern)) if os.path.isdir(p))


def probe_duration(path: str) -> float:
    """Seconds of a video (the fastest decoder here) or of a VITAL frame directory (2 fps JPEGs)."""
    from vital_ray.tools.video_io import VideoError, open_video

    try:
        return float(open_video(path, "auto" if os.path.isfile(path) else "frames").duration)
    except VideoError as e:
        raise AdapterError(f"cannot read the duration of {path}: {e}") from None


class Collector:
    """Builds records row by row: a row that raises AdapterError is skipped and reported (or fails the load with
    on_bad="fail"); a record whose video is missing is reported, never crashed on."""

    def __init__(self, benchmark: str, on_bad: str = "skip"):
        if on_bad not in ("skip", "fail"):
            raise ValueError(f"on_bad must be 'skip' or 'fail', got {on_bad!r}")
        self.benchmark, self.on_bad = benchmark, on_bad
        self.result = LoadResult()
        self.seen: set[str] = set()

    def add(self, where: str, build: Callable[[], Record]) -> None:
        try:
            rec = build()
            if rec.id in self.seen:
                raise AdapterError(f"{where}: duplicate record id {rec.id!r}")
            if not (os.path.exists(rec.video) or os.path.isdir(os.path.splitext(rec.video)[0])):
                self.result.missing_videos.append(rec.video)
                raise AdapterError(f"{where}: video not found: {rec.video}")
            if not rec.duration or rec.duration <= 0:
                try:
                    rec.duration = probe_duration(rec.video)
                except AdapterError as e:
                    raise AdapterError(f"{where}: {e}") from None
            self.seen.add(rec.id)
            rec.extra.setdefault("benchmark", self.benchmark)
            self.result.records.append(rec)
        except AdapterError as e:
            self.fail(e)

    def fail(self, error: AdapterError) -> None:
        if self.on_bad == "fail":
            raise error
        self.result.errors.append(str(error))


def make_record(rid: str, video: str, duration: float | None, text: str, solution, data_source: str,
                metric: str, question_type: str = "", **extra) -> Record:
    """A Record with the eval fields in `extra`; duration None/0 = probe the video."""
    return Record(id=str(rid), video=video, duration=float(duration or 0.0), text=text, solution=solution,
                  data_source=data_source, extra={"metric": metric, "question_type": str(question_type or ""),
                                                  **extra})
