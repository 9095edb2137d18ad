"""`get_video_clip_frame(start_time, end_time)`: VITAL's clip tool (docs/method.md §1.2), from the frame store or a
decoder.

Frames are taken on the `source_fps` (2 fps) grid of the segment, subsampled uniformly to `max_frames`, resized
within the pixel budget, stamped with `start + i/fps_eff`, padded to an even count. Bad arguments and unreadable
videos become error results with a reason; this function never raises on bad input and is idempotent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vital_ray.config import ToolConfig
from vital_ray.tools.sources import open_source
from vital_ray.tools.video_io import VideoClip, VideoError, read_frames

TOOL_NAME = "get_video_clip_frame"
TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Returns the frames of the video segment from start_time to end_time as a list of images.",
        "parameters": {
            "type": "object",
            "properties": {
                "start_time": {"type": "number", "description": "Start time in seconds, keeping two decimal places."},
                "end_time": {"type": "number", "description": "End time in seconds, keeping two decimal places."},
            },
            "required": ["start_time", "end_time"],
        },
    },
}


@dataclass
class ToolResult:
    ok: bool
    clip: VideoClip | None
    error: str | None
    text: str  # what the model reads in the tool turn


def _fail(reason: str) -> ToolResult:
    return ToolResult(False, None, reason, f"Error: {TOOL_NAME} tool execution failed: {reason}")


def _clip_repr(value, limit: int = 40) -> str:
    """Model-written values echoed in error turns stay short (they cost the trajectory's token budget)."""
    r = repr(value)
    return r if len(r) <= limit else r[:limit] + "..."


def _as_time(name: str, value) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        t = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit JSON integer
        raise ValueError(f"{name} must be a number, got {_clip_repr(value)}") from None
    if not math.isfinite(t):
        raise ValueError(f"{name} must be finite, got {_clip_repr(value)}")
    return t


def get_video_clip_frame(video_path: str, start_time, end_time, duration: float, cfg: ToolConfig) -> ToolResult:
    try:
        start, end = _as_time("start_time", start_time), _as_time("end_time", end_time)
        if not start < end:
            raise ValueError(f"start_time {start} must be smaller than end_time {end}")
        if start < 0:
            raise ValueError(f"start_time {start} must be >= 0")
        if end > duration:
            raise ValueError(f"end_time {end} exceeds the video duration {duration:.2f}")
        if end - start <= cfg.min_clip_s:
            raise ValueError(f"clip must be longer than {cfg.min_clip_s} s, got {end - start:.2f} s")
    except ValueError as e:
        return _fail(str(e))
    try:
        src = open_source(video_path, cfg, (cfg.min_pixels, cfg.max_pixels))
        fps = cfg.source_fps
        n_grid = max(1, int(math.floor(src.duration * fps)))
        lo, hi = math.ceil(start * fps), min(math.floor(end * fps), n_grid - 1)
        if hi < lo:
            return _fail(f"no frames between {start:.2f} and {end:.2f} s (video has {src.duration:.2f} s)")
        idx = np.arange(lo, hi + 1)
        fps_eff = fps
        if len(idx) > cfg.max_frames:
            keep = idx[np.linspace(0, len(idx) - 1, cfg.max_frames).round().astype(int)]
            fps_eff = len(keep) / len(idx) * fps
            idx = keep
        stamps = [start + i / fps_eff for i in range(len(idx))]
        frames = read_frames(src, [i / fps for i in idx], stamps, cfg.min_pixels, cfg.max_pixels, cfg.draw_timestamps)
    except VideoError as e:
        return _fail(str(e))
    except ValueError as e:  # e.g. absurd aspect ratio
        return _fail(f"{video_path}: {e}")
    clip = VideoClip(frames, fps_eff, start, end, stamps, src.name)
    return ToolResult(True, clip, None, f"Video clip from {start:.2f} to {end:.2f} seconds.")


def execute_tool_call(name: str, arguments: dict, video_path: str, duration: float, cfg: ToolConfig) -> ToolResult:
    """Dispatch a parsed call; unknown tools and wrong argument sets are error results."""
    if name != TOOL_NAME:
        return ToolResult(False, None, f"unknown tool {_clip_repr(name)}",
                          f"Error: Tool {_clip_repr(name)} not found in tools list (available: {TOOL_NAME})")
    if not isinstance(arguments, dict):
        return _fail("arguments must be an object")
    required = {"start_time", "end_time"}
    if missing := required - arguments.keys():
        return _fail(f"missing arguments {sorted(missing)}")
    if extra := arguments.keys() - required:
        return _fail(f"unexpected arguments {sorted(extra)}")
    return get_video_clip_frame(video_path, arguments["start_time"], arguments["end_time"], duration, cfg)
