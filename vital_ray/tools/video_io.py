"""Open, resize and timestamp video frames: shared by the clip tool and the prompt's global view.

The decoders live in `vital_ray.tools.decoders` (one interface; `tool.decoder` picks one); this module caches
opened sources, resizes within a pixel budget and burns in timestamps. Every decoding failure becomes a
`VideoError` naming the file, never a decoder's traceback.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vital_ray.tools.decoders import open_decoder, resolve
from vital_ray.tools.decoders.base import Budget, VideoError, VideoSource, probe, scaled_size, smart_resize

__all__ = ["VideoClip", "VideoError", "VideoSource", "draw_timestamp", "open_video", "probe", "read_frames",
           "resize_frames", "sample_global_view", "scaled_size", "smart_resize"]

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
MAX_SOURCE_PIXELS = 1920 * 1088  # default decode size cap (ToolConfig.max_source_pixels)
DECODE_CHUNK_BYTES = 256 * 2**20  # raw frames held at once before resizing: bounds a call's memory
DURATION_SLACK = (1.02, 1.0)  # a record may claim up to 2 % + 1 s more than the file holds


@dataclass
class VideoClip:
    frames: np.ndarray  # uint8 (T, H, W, 3), T even, H and W multiples of 28
    fps: float  # effective fps of these frames
    start: float
    end: float
    timestamps: list[float] = field(default_factory=list)
    source: str = ""  # where the frames came from: a decoder's name, or "store"


@lru_cache(maxsize=32)
def _font(size: int):
    try:
        return ImageFont.truetype(FONT_PATH, size)
    except OSError:
        return ImageFont.load_default()


def draw_timestamp(frame: np.ndarray, t: float) -> np.ndarray:
    """VITAL's look: f"{t:.2f}s" in red, bottom-right, DejaVuSans-Bold at 40*sqrt(H*W)/336 px."""
    img = Image.fromarray(frame)
    h, w = frame.shape[:2]
    font = _font(max(6, int(40 * math.sqrt(h * w) / 336)))
    draw = ImageDraw.Draw(img)
    text = f"{t:.2f}s"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    margin = max(1, w // 100)
    draw.text((w - (right - left) - margin - left, h - (bottom - top) - margin - top), text, fill=(255, 0, 0),
              font=font)
    return np.asarray(img)


_CACHE: OrderedDict[tuple, VideoSource] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def open_video(path: str, decoder: str = "auto", frame_fps: float = 2.0, max_pixels: int = MAX_SOURCE_PIXELS,
               budget: Budget | None = None) -> VideoSource:
    """Open (and cache, LRU 8 per process) a video: tool actors serve many calls on the same file. `budget`:
    the (min, max) pixels the caller wants the frames at, so a scaling decoder produces them at that size."""
    try:
        stamp = os.stat(path).st_mtime_ns if decoder != "frames" else 0
    except OSError:
        raise VideoError(path, "no such file") from None
    name = resolve(decoder)
    key = (path, name, stamp, max_pixels, budget)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    src = open_decoder(name, path, max_pixels, budget, frame_fps)
    with _CACHE_LOCK:
        _CACHE[key] = src
        while len(_CACHE) > 8:
            _CACHE.popitem(last=False)
    return src


def read_frames(src: VideoSource, times: list[float], stamps: list[float], min_pixels: int, max_pixels: int,
                draw: bool) -> np.ndarray:
    """Decode at `times` in chunks of at most DECODE_CHUNK_BYTES raw pixels, resize each chunk within the pixel
    budget and burn in `stamps`, then pad to an even count (Qwen's temporal patch of 2). Peak memory is one
    chunk plus the small output, however long the clip or large the source."""
    per = max(1, DECODE_CHUNK_BYTES // (3 * max(1, src.pixels)))
    out: list[np.ndarray] = []
    for i in range(0, len(times), per):
        out += resize_frames(src.get_frames(times[i:i + per]), stamps[i:i + per], min_pixels, max_pixels, draw)
    if len(out) % 2:
        out.append(out[-1])
    return np.stack(out).astype(np.uint8, copy=False)


def resize_frames(frames: np.ndarray, stamps: list[float], min_pixels: int, max_pixels: int, draw: bool) -> list:
    """Each frame resized within the budget (a no-op where the decoder already produced that size), stamped."""
    h, w = frames.shape[1:3]
    rh, rw = smart_resize(h, w, 28, min_pixels, max_pixels)
    out = []
    for f, t in zip(frames, stamps):
        if (rh, rw) != (h, w):
            # reducing_gap: box-reduce first on large downscales (~2x faster, same look at these sizes)
            f = np.asarray(Image.fromarray(f).resize((rw, rh), Image.BICUBIC, reducing_gap=3.0))
        out.append(draw_timestamp(f, t) if draw else f)
    return out


def global_view_times(duration: float, fps: float, max_frames: int) -> list[float]:
    """The seconds the global view samples: the middles of `n` equal parts of the video. Public so that synthetic
    tasks can place events that this view cannot see."""
    n = max(1, min(max_frames, int(duration * fps)))
    return [(i + 0.5) * duration / n for i in range(n)]


def sample_global_view(path: str, duration: float, cfg, decoder: str = "auto",
                       max_source_pixels: int = MAX_SOURCE_PIXELS, src: VideoSource | None = None) -> VideoClip:
    """Uniform frames over the whole video: at `cfg.fps`, at most `cfg.max_frames` (VITAL's global view), read
    from `src` when given (e.g. the frame store), else decoded with `decoder`.
    A record claiming more seconds than the file holds is an error (its tool calls and labels would be off)."""
    if src is None:
        src = open_video(path, decoder, max_pixels=max_source_pixels, budget=(cfg.min_pixels, cfg.max_pixels))
    if duration and duration > src.duration * DURATION_SLACK[0] + DURATION_SLACK[1]:
        raise VideoError(path, f"the record's duration {duration:.2f} s exceeds the file's {src.duration:.2f} s")
    duration = min(duration, src.duration) if duration and duration > 0 else src.duration
    times = global_view_times(duration, cfg.fps, cfg.max_frames)
    n = len(times)
    frames = read_frames(src, times, times, cfg.min_pixels, cfg.max_pixels, cfg.draw_timestamps)
    return VideoClip(frames, n / duration, 0.0, duration, times, src.name)
