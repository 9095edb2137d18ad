"""VITAL's format reward and tool bonus (docs/method.md §2).

The scored text is the concatenation of the model's generated turns (tool outputs excluded), e.g.
`<think>..</think><tool_call>..</tool_call><think>..</think><answer>..</answer>`.
"""

from __future__ import annotations

from typing import Iterator

from vital_ray.config import RewardConfig

ALLOWED_TAGS = ("think", "tool_call", "answer")


def tag_blocks(text: str) -> Iterator[tuple[str, int, int]]:
    """(tag, start, end) of every `<tag>...</tag>` block, left to right, non-overlapping.

    Same matches as VITAL's `re.finditer(r"<(.*?)>(.*?)</\\1>", text, re.DOTALL)` except that a tag may not
    contain '<' or '>' (the regex would also accept such a "tag" if its literal closer appeared later). The
    regex backtracks cubically on '<'-heavy text (6 kB of "<a>" took 40 s); this scan is near-linear."""
    missing_from: dict[str, int] = {}  # closer known absent at or after this position
    found_at: dict[str, int] = {}  # last position where the closer was found
    i = text.find("<")
    while i != -1:
        j = text.find(">", i + 1)
        if j == -1:
            return
        tag = text[i + 1:j]
        close = -1
        if "<" not in tag and missing_from.get(tag, len(text) + 1) > j + 1:
            closer = f"</{tag}>"
            cached = found_at.get(tag, -1)
            close = cached if cached >= j + 1 else text.find(closer, j + 1)
            if close == -1:
                missing_from[tag] = j + 1
            else:
                found_at[tag] = close
        if close == -1:
            i = text.find("<", i + 1)
            continue
        end = close + len(tag) + 3
        yield tag, i, end
        i = text.find("<", end)


def format_reward(text: str) -> float:
    """1.0 iff there is at least one block, every tag is think/tool_call/answer, no tag follows itself, only
    whitespace lies between blocks, the first block is think and the last is answer; else 0.0."""
    prev_tag, prev_end = None, 0
    for tag, start, end in tag_blocks(text):
        if tag not in ALLOWED_TAGS or tag == prev_tag:
            return 0.0
        if prev_tag is None and tag != "think":
            return 0.0
        if prev_tag is not None and text[prev_end:start].strip():
            return 0.0
        prev_tag, prev_end = tag, end
    return 1.0 if prev_tag == "answer" else 0.0


def tool_bonus(n_tool_ok: int, cfg: RewardConfig) -> float:
    """`tool_bonus` per successful tool call, paid for at most `tool_bonus_cap` calls (VITAL: 0.5, 2)."""
    n = max(0, int(n_tool_ok or 0))
    return cfg.tool_bonus * min(n, cfg.tool_bonus_cap)
