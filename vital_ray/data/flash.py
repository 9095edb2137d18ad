"""The `flash` task: a task the tiny demo model can learn from scratch in minutes, and only with the clip tool.

A 40 s video has four 10 s slots; inside each slot the whole screen flashes one of four colours for 3 s. The
question names a slot by a fixed phrase ("the second quarter") and asks for that flash's colour, as a multiple
choice with the options always in the same order (chance: 25 %). The flash never covers a frame of the global
view, whatever its budget (2 or 4 frames, varied per prompt), so the prompt alone cannot answer; the slot's clip
(2 fps, at most 1.5 s between its frames) always shows it. Why this shape: the tool call the model must write is
one of four fixed strings it can memorise, and the answer is a colour a frozen random ViT still separates, so
what is left to learn is "call the slot's window, then read the clip", which is what the demo wants to prove.
"""

from __future__ import annotations

import random

import numpy as np

from vital_ray.data.records import Record

SLOT_S = 10.0
SLOT_PHRASES = ("first quarter", "second quarter", "third quarter", "last quarter")
DURATION_S = SLOT_S * len(SLOT_PHRASES)
FLASH_S = 3.0
# slot-relative starts: the flash ends before the slot's middle or starts after it, and keeps 0.5 s from both
# ends, so it misses the global view's frames at budgets 2 (slot edges) and 4 (slot middles)
FLASH_STARTS = (0.5, 1.0, 1.5, 5.5, 6.0, 6.5)
VIEW_BUDGETS = (2, 4)
SIZE, FPS = (112, 112), 4  # one 112 x 112 view is 16 vision tokens; 4 fps resolves the 0.5 s margins
FLASH_COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (240, 220, 40)}
OPTIONS = "\n".join(f"{letter}. {colour}" for letter, colour in zip("ABCD", FLASH_COLOURS))
TEMPLATE = ("What colour flashes on the whole screen in the {phrase} of the video?\nOptions:\n{options}\n"
            "Answer with the option's letter.")


def plan_flashes(rng: random.Random) -> list[tuple[str, float, float]]:
    """(colour, start, end) of one flash per slot."""
    out = []
    for slot in range(len(SLOT_PHRASES)):
        start = slot * SLOT_S + rng.choice(FLASH_STARTS)
        out.append((rng.choice(list(FLASH_COLOURS)), start, start + FLASH_S))
    return out


def flash_frames(flashes: list[tuple[str, float, float]], size: tuple[int, int], seed: int):
    """`frame_at(t)` for `encode_video`: a dim noisy background, the whole frame in colour during a flash."""
    w, h = size
    base = np.full((h, w, 3), 40, np.uint8) + np.random.default_rng(seed).integers(0, 12, (h, w, 1), dtype=np.uint8)

    def frame_at(t: float) -> np.ndarray:
        for colour, start, end in flashes:
            if start <= t < end:
                return np.broadcast_to(np.array(FLASH_COLOURS[colour], np.uint8), (h, w, 3)).copy()
        return base

    return frame_at


def flash_records(video: str, vid: str, flashes: list[tuple[str, float, float]], per_video: int,
                  rng: random.Random) -> list[Record]:
    """Questions about `per_video` of the slots (all four at most), each with its own global-view budget."""
    out = []
    for slot in rng.sample(range(len(SLOT_PHRASES)), min(per_video, len(SLOT_PHRASES))):
        colour, start, end = flashes[slot]
        window = [slot * SLOT_S, (slot + 1) * SLOT_S]
        out.append(Record(
            id=f"{vid}_flash{slot}", video=video, duration=DURATION_S,
            text=TEMPLATE.format(phrase=SLOT_PHRASES[slot], options=OPTIONS),
            solution="ABCD"[list(FLASH_COLOURS).index(colour)], data_source="synthetic/flash",
            video_kwargs={"max_frames": rng.choice(VIEW_BUDGETS)}, tool_params=str(window),
            extra={"event_span": [start, end], "slot": slot, "colour": colour}))
    return out
