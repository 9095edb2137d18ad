"""Parse one assistant turn: `<tool_call>{json}</tool_call>` first, then `<answer>`, else an explicit error.

VITAL's order (docs/method.md §1.1): a turn holding both a tool call and an answer is a tool call. Every malformed case
becomes an error result with a reason; nothing silently continues (docs/method.md §7 D2).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

_TOOL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass
class ParsedTurn:
    kind: str  # tool | answer | error
    name: str = ""
    arguments: dict = field(default_factory=dict)
    answer: str = ""
    error: str = ""
    extra_calls: int = 0  # further tool calls in the same turn (ignored, as VITAL takes the first)


def _reject_constant(token: str):
    raise ValueError(f"non-finite number {token} in tool arguments")


def parse_turn(text: str) -> ParsedTurn:
    calls = _TOOL.findall(text)
    if calls:
        try:
            obj = json.loads(calls[0].strip(), parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as e:
            return ParsedTurn("error", error=f"tool call is not valid JSON: {e}")
        except RecursionError:  # e.g. "[[[[..." : json's C scanner gives up past ~1000 levels
            return ParsedTurn("error", error="tool call is not valid JSON: nested too deeply")
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return ParsedTurn("error", error='tool call needs a string "name"')
        if not isinstance(obj.get("arguments"), dict):
            return ParsedTurn("error", error='tool call needs an object "arguments"')
        for k, v in obj["arguments"].items():
            if isinstance(v, float) and not math.isfinite(v):
                return ParsedTurn("error", error=f"argument {k} is not finite")
        return ParsedTurn("tool", name=obj["name"], arguments=obj["arguments"], extra_calls=len(calls) - 1)
    if "<tool_call>" in text:
        return ParsedTurn("error", error="unclosed <tool_call>")
    m = _ANSWER.search(text)
    if m:
        return ParsedTurn("answer", answer=m.group(1).strip())
    return ParsedTurn("error", error="response parse failed (no <tool_call> and no <answer>)")


def extract_answer(text: str) -> str | None:
    """Content of the last `<answer>` block, or None."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else None
