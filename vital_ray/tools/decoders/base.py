"""What every decoder shares: the error type, the source interface, the cheap file checks and the header probe.

A decoder's constructor does its checks through `checked_probe`, so a missing, empty or unreadable file gives the
same `VideoError` reason whichever decoder is configured.
"""

from __future__ import annotations

import math
import os

import numpy as np


class VideoError(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot read video {path}: {reason}")
        self.path, self.reason = path, reason


class VideoSource:
    """One opened video. `get_frames(times)` returns uint8 (len(times), H, W, 3) in the order of `times`."""

    name = ""  # decoder name (metrics: tool/decoder/<name>), or "store"
    duration: float
    fps: float
    num_frames: int
    pixels: int  # of one returned frame

    def get_frames(self, times: list[float]) -> np.ndarray:
        raise NotImplementedError

    def _opened(self, path: str, size: tuple[int, int] | None, w: int, h: int) -> None:
        """After a decoder has read `num_frames` and `fps`: the shared check and the derived fields. `size` is
        the decode size (None: the source's `w` x `h`)."""
        if self.num_frames <= 0 or not self.fps > 0:
            raise VideoError(path, "no decodable frames")
        self.path = path
        self.pixels = size[0] * size[1] if size else w * h
        self.duration = self.num_frames / self.fps


def short(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"[:300]


def checked_probe(path: str) -> tuple[str, int, int]:
    """`probe` after the cheap checks every decoder shares: the file exists and is not empty."""
    if not os.path.isfile(path):
        raise VideoError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "empty file")
    return probe(path)


def probe(path: str) -> tuple[str, int, int]:
    """(codec, width, height) of the first video stream, read from the container headers (no decoding)."""
    import av

    try:
        with av.open(path) as container:
            streams = container.streams.video
            if not streams:
                raise VideoError(path, "no video stream")
            ctx = streams[0].codec_context
            tag = (ctx.codec_tag or "").strip("\x00 ")  # the container's fourcc, e.g. av01, vvc1, avc1
            codec = f"{tag} ({ctx.name})" if tag.isalnum() else ctx.name
            return codec, int(streams[0].width), int(streams[0].height)
    except VideoError:
        raise
    except Exception as e:  # av.FFmpegError subclasses: invalid data, truncated, not a media file
        raise VideoError(path, short(e)) from None


def scaled_size(w: int, h: int, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) within `max_pixels`, aspect kept, even sides; None when the frame already fits."""
    if w * h <= max_pixels:
        return None
    scale = math.sqrt(max_pixels / (w * h))
    return max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)


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


Budget = tuple[int, int]  # (min_pixels, max_pixels) of the frames the caller will finally use


def decode_size(w: int, h: int, max_source_pixels: int, budget: Budget | None) -> tuple[int, int] | None:
    """The (width, height) a scaling decoder should produce, None for the native size: the caller's final size
    (`smart_resize` within `budget`) when it shrinks the frame, since scaling inside the decoder saves the RGB
    conversion of full frames and the later resize; else the memory cap `max_source_pixels`."""
    if budget:
        oh, ow = smart_resize(h, w, 28, *budget)
        if ow <= w and oh <= h:
            return None if (ow, oh) == (w, h) else (ow, oh)
    return scaled_size(w, h, max_source_pixels)


def grid_index(t: float, fps: float, n: int) -> int:
    """The frame shown at time `t` of a stream of `n` frames at `fps` (nearest frame start), clamped."""
    return min(n - 1, max(0, int(round(t * fps))))
