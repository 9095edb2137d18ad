"""SFT targets: the record's own reasoning turns (MTVR) first; a trace built from ground truth only as fallback.

Stage 1 (text CoT, no tool): a `solution` string holding `<answer>` (MTVR_CoT), or a one-turn list, is the
target as it is; otherwise `<think>...</think><answer>...</answer>` from the ground truth.

Stage 3 (tool use): a two-turn `solution` (MTVR_Tool_CoT: a list or its repr) is the target; the clip is the
record's `tool_params` window, else the window of turn 1's tool call. Records without their own turns get a
built trace: turn 1 calls the clip tool on the record's `tool_params` window, else around the answer (ground-truth
span widened by up to 20%, as VITAL built its tool parameters); turn 2 answers.
"""

from __future__ import annotations

import ast
import json
import random
from dataclasses import dataclass

from vital_ray.data.records import RecordError, solution_turns, tool_window
from vital_ray.tools.parser import parse_turn


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
    turns = solution_turns(record.solution)
    if turns is not None:
        return turns[0] if len(turns) == 1 else None  # two turns: a tool-SFT record, not a CoT target
    if isinstance(record.solution, str) and "<answer>" in record.solution:
        return record.solution
    span = _span(record)
    where = f" The evidence is around {span[0]:.0f}-{span[1]:.0f} s." if span else ""
    return f"<think>Look at the whole video.{where}</think><answer>{_answer_text(record, span)}</answer>"


def own_tool_trace(record) -> TeacherTrace | None:
    """The record's own two turns and their clip window (tool_params, else turn 1's call); None without them."""
    turns = solution_turns(record.solution)
    if turns is None or len(turns) != 2:
        return None
    if getattr(record, "tool_params", None):
        s, e = tool_window(record.tool_params, record.duration, record.id)
    else:
        call = parse_turn(turns[0])
        if call.kind != "tool":
            raise RecordError(f"{record.id}: turn 1 of the solution has no tool call and there is no tool_params")
        s, e = tool_window([call.arguments.get("start_time"), call.arguments.get("end_time")], record.duration,
                           record.id)
    return TeacherTrace(turns[0], s, e, turns[1])


def teacher_trace(record, rng: random.Random) -> TeacherTrace | None:
    """The record's own tool-use turns when it has them; else a trace built around its ground-truth span."""
    own = own_tool_trace(record)
    if own is not None:
        return own
    span = _span(record)
    if span is None:
        return None
    if getattr(record, "tool_params", None):  # the record names its window (the flash task's slot): call it
        cs, ce = tool_window(record.tool_params, record.duration, record.id)
    else:
        s, e = span
        pad = (e - s) * rng.uniform(0.0, 0.2)
        cs, ce = max(0.0, s - pad), min(record.duration, e + pad)
        if ce - cs <= 1.0:
            ce = min(record.duration, cs + 2.0)
    turn1 = f"<think>Zoom in to check.</think>{_tool_call(cs, ce)}"
    turn2 = f"<think>Seen it.</think><answer>{_answer_text(record, span)}</answer>"
    return TeacherTrace(turn1, cs, ce, turn2)
