"""Decode, resize and timestamp video frames: shared by the clip tool and the prompt's global view.

Backends: decord straight from the video file (default; no JPEG pre-extraction), or VITAL's directory of 2 fps
JPEGs (`<video path without extension>/<name>_<int>.jpg`). Every decoding failure becomes a `VideoError`
naming the file, never a decord traceback.
"""

from __future__ import annotations

import glob
import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


class VideoError(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot read video {path}: {reason}")
        self.path, self.reason = path, reason


@dataclass
class VideoClip:
    frames: np.ndarray  # uint8 (T, H, W, 3), T even, H and W multiples of 28
    fps: float  # effective fps of these frames
    start: float
    end: float
    timestamps: list[float] = field(default_factory=list)


def smart_resize(h: int, w: int, factor: int = 28, min_pixels: int = 4 * 784, max_pixels: int = 16 * 784):
    """Qwen2.5-VL's rule: sides are multiples of `factor`, area within [min_pixels, max_pixels], aspect kept."""
    if max(h, w) / max(1, min(h, w)) > 200:
        raise ValueError(f"aspect ratio of {w}x{h} exceeds 200")
    hb, wb = max(factor, round(h / factor) * factor), max(factor, round(w / factor) * factor)
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb = math.ceil(h * beta / factor) * factor
        wb = math.ceil(w * beta / factor) * factor
    return hb, wb


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


class VideoSource:
    duration: float
    fps: float
    num_frames: int

    def get_frames(self, times: list[float]) -> np.ndarray:
        raise NotImplementedError


class DecordSource(VideoSource):
    def __init__(self, path: str):
        import decord

        if not os.path.isfile(path):
            raise VideoError(path, "no such file")
        if os.path.getsize(path) == 0:
            raise VideoError(path, "empty file")
        try:
            self.vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            self.num_frames = len(self.vr)
            self.fps = float(self.vr.get_avg_fps())
        except Exception as e:  # decord raises RuntimeError / DECORDError for corrupt or truncated files
            raise VideoError(path, _short(e)) from None
        if self.num_frames <= 0 or not self.fps > 0:
            raise VideoError(path, "no decodable frames")
        self.path = path
        self.duration = self.num_frames / self.fps
        self.lock = threading.Lock()  # one VideoReader is not safe across threads

    def get_frames(self, times: list[float]) -> np.ndarray:
        idx = [min(self.num_frames - 1, max(0, int(round(t * self.fps)))) for t in times]
        try:
            with self.lock:
                return self.vr.get_batch(idx).asnumpy()
        except Exception as e:
            raise VideoError(self.path, _short(e)) from None


class FrameDirSource(VideoSource):
    """VITAL's layout: `<video path without extension>/*_<int>.jpg` at `fps` frames per second."""

    def __init__(self, path: str, fps: float = 2.0):
        self.path = os.path.splitext(path)[0]
        files = glob.glob(os.path.join(self.path, "*.jpg"))
        num = re.compile(r"_(\d+)\.jpg$")
        files = sorted((f for f in files if num.search(f)), key=lambda f: int(num.search(f).group(1)))
        if not files:
            raise VideoError(path, f"no frame directory {self.path} with *_<n>.jpg files")
        self.files, self.fps, self.num_frames = files, fps, len(files)
        self.duration = self.num_frames / fps

    def get_frames(self, times: list[float]) -> np.ndarray:
        out = []
        for t in times:
            f = self.files[min(self.num_frames - 1, max(0, int(math.floor(t * self.fps + 1e-6))))]
            try:
                with Image.open(f) as im:
                    out.append(np.asarray(im.convert("RGB")))
            except OSError as e:
                raise VideoError(f, _short(e)) from None
        return np.stack(out)


def _short(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"[:300]


_CACHE: OrderedDict[tuple, VideoSource] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def open_video(path: str, backend: str = "decord", frame_fps: float = 2.0) -> VideoSource:
    """Open (and cache, LRU 8 per process) a video: tool actors serve many calls on the same file."""
    try:
        stamp = os.path.getmtime(path) if backend == "decord" else 0.0
    except OSError:
        raise VideoError(path, "no such file") from None
    key = (path, backend, stamp)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    src = DecordSource(path) if backend == "decord" else FrameDirSource(path, frame_fps)
    with _CACHE_LOCK:
        _CACHE[key] = src
        while len(_CACHE) > 8:
            _CACHE.popitem(last=False)
    return src


def finish_frames(frames: np.ndarray, stamps: list[float], min_pixels: int, max_pixels: int,
                  draw: bool) -> np.ndarray:
    """Resize within the pixel budget, burn in timestamps, pad to an even count (Qwen's temporal patch of 2)."""
    h, w = frames.shape[1:3]
    rh, rw = smart_resize(h, w, 28, min_pixels, max_pixels)
    out = []
    for f, t in zip(frames, stamps):
        if (rh, rw) != (h, w):
            # reducing_gap: box-reduce first on large downscales (~2x faster, same look at these sizes)
            f = np.asarray(Image.fromarray(f).resize((rw, rh), Image.BICUBIC, reducing_gap=3.0))
        out.append(draw_timestamp(f, t) if draw else f)
    if len(out) % 2:
        out.append(out[-1])
    return np.stack(out).astype(np.uint8, copy=False)


def sample_global_view(path: str, duration: float, cfg, backend: str = "decord") -> VideoClip:
    """Uniform frames over the whole video: at `cfg.fps`, at most `cfg.max_frames` (VITAL's global view)."""
    src = open_video(path, backend)
    duration = min(duration, src.duration) if duration and duration > 0 else src.duration
    n = max(1, min(cfg.max_frames, int(duration * cfg.fps)))
    times = [(i + 0.5) * duration / n for i in range(n)]
    frames = finish_frames(src.get_frames(times), times, cfg.min_pixels, cfg.max_pixels, cfg.draw_timestamps)
    return VideoClip(frames, n / duration, 0.0, duration, times)
