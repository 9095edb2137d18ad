"""VITAL's format reward (spec 4.1): think / tool_call / answer blocks in a valid order."""

from __future__ import annotations

import re

_BLOCK = re.compile(r"<(.*?)>(.*?)</\1>", re.DOTALL)
ALLOWED = {"think", "tool_call", "answer"}


def format_reward(text: str) -> float:
    """1.0 iff blocks use only allowed tags, no tag repeats back to back, only whitespace lies between blocks,
    the first block is think and the last is answer."""
    blocks = list(_BLOCK.finditer(text))
    if not blocks:
        return 0.0
    tags = [b.group(1) for b in blocks]
    if any(t not in ALLOWED for t in tags) or tags[0] != "think" or tags[-1] != "answer":
        return 0.0
    if any(a == b for a, b in zip(tags, tags[1:])):
        return 0.0
    gaps = (text[a.end():b.start()] for a, b in zip(blocks, blocks[1:]))
    return 1.0 if all(not g.strip() for g in gaps) else 0.0
