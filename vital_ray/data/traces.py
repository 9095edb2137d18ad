"""Teacher traces for the SFT stages, built from ground truth (or taken from the record when it carries them).

Stage 1 (text CoT, no tool): `<think>...</think><answer>...</answer>` (MTVR-CoT shape: a `solution` string that
already holds `<answer>` is used as it is).

Stage 3 (tool use, MTVR-CoT-Tool shape): turn 1 thinks and calls the clip tool around the answer (ground-truth span widened by up to 20%, as VITAL built
its tool parameters); turn 2 thinks again and answers. Records that already carry `solution` as two turns plus
`tool_params` (the MTVR tool SFT files) are used as they are.
"""

from __future__ import annotations

import ast
import json
import random
from dataclasses import dataclass


@dataclass
class TeacherTrace:
    turn1: str  # ends with </tool_call>
    start: float
    end: float
    turn2: str  # ends with </answer>


def _span(record) -> tuple[float, float] | None:
    """The evidence window: a TG solution span, else the record's annotated `event_span` (synthetic MCQ)."""
    sol = record.solution
    if isinstance(sol, str):
        try:
            sol = ast.literal_eval(sol)
        except (ValueError, SyntaxError):
            sol = None
    if isinstance(sol, (list, tuple)) and len(sol) == 2 and all(isinstance(x, (int, float)) for x in sol):
        return float(sol[0]), float(sol[1])
    span = (getattr(record, "extra", None) or {}).get("event_span")
    return (float(span[0]), float(span[1])) if span else None


def _tool_call(start: float, end: float) -> str:
    args = {"start_time": round(start, 2), "end_time": round(end, 2)}
    return "<tool_call>" + json.dumps({"name": "get_video_clip_frame", "arguments": args}) + "</tool_call>"


def _answer_text(record, span: tuple[float, float] | None) -> str:
    if isinstance(record.solution, (list, tuple)) and span is not None:
        return f"The event happens in the {span[0]:.2f} - {span[1]:.2f} seconds."
    return str(record.solution)


def cot_trace(record) -> str | None:
    """A single assistant turn for text-CoT SFT (stage 1), ending with `</answer>`."""
    if isinstance(record.solution, str) and "<answer>" in record.solution:
        return record.solution
    if isinstance(record.solution, list) and not _span(record):
        return None  # a tool-SFT record (two turns): not a CoT target
    span = _span(record)
    where = f" The evidence is around {span[0]:.0f}-{span[1]:.0f} s." if span else ""
    return f"<think>Look at the whole video.{where}</think><answer>{_answer_text(record, span)}</answer>"


def teacher_trace(record, rng: random.Random) -> TeacherTrace | None:
    if isinstance(record.solution, list) and len(record.solution) == 2 and all(
            isinstance(x, str) for x in record.solution) and getattr(record, "tool_params", None):
        s, e = ast.literal_eval(str(record.tool_params))
        return TeacherTrace(record.solution[0], float(s), float(e), record.solution[1])
    span = _span(record)
    if span is None:
        return None
    s, e = span
    pad = (e - s) * rng.uniform(0.0, 0.2)
    cs, ce = max(0.0, s - pad), min(record.duration, e + pad)
    if ce - cs <= 1.0:
        ce = min(record.duration, cs + 2.0)
    turn1 = f"<think>Zoom in to check.</think>{_tool_call(cs, ce)}"
    turn2 = f"<think>Seen it.</think><answer>{_answer_text(record, span)}</answer>"
    return TeacherTrace(turn1, cs, ce, turn2)
