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
MAX_SOURCE_PIXELS = 1920 * 1088  # default decode size cap (ToolConfig.max_source_pixels)
DECODE_CHUNK_BYTES = 256 * 2**20  # raw frames held at once before resizing: bounds a call's memory
DURATION_SLACK = (1.02, 1.0)  # a record may claim up to 2 % + 1 s more than the file holds


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
    pixels: int  # of one decoded frame

    def get_frames(self, times: list[float]) -> np.ndarray:
        raise NotImplementedError


class DecordSource(VideoSource):
    """decord over the file; frames above `max_pixels` are scaled down by decord's decoder (an 8000x8000 clip
    would otherwise take 192 MB per frame before the tool's resize)."""

    def __init__(self, path: str, max_pixels: int = MAX_SOURCE_PIXELS):
        import decord

        codec, w, h = _checked_probe(path)
        size = scaled_size(w, h, max_pixels)
        try:
            self.vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1,
                                         **({"width": size[0], "height": size[1]} if size else {}))
            self.num_frames = len(self.vr)
            self.fps = float(self.vr.get_avg_fps())
        except Exception as e:  # decord raises RuntimeError / DECORDError for corrupt or truncated files
            reason = _short(e)
            if "cannot find video stream" in reason:  # the container is fine, decord lacks the decoder
                reason = f"unsupported codec {codec}: decord cannot decode it; re-encode to H.264"
            raise VideoError(path, reason) from None
        if self.num_frames <= 0 or not self.fps > 0:
            raise VideoError(path, "no decodable frames")
        self.path = path
        self.pixels = size[0] * size[1] if size else w * h
        self.duration = self.num_frames / self.fps
        self.lock = threading.Lock()  # one VideoReader is not safe across threads

    def get_frames(self, times: list[float]) -> np.ndarray:
        idx = [min(self.num_frames - 1, max(0, int(round(t * self.fps)))) for t in times]
        try:
            with self.lock:
                return self.vr.get_batch(idx).asnumpy()
        except Exception as e:
            raise VideoError(self.path, _short(e)) from None


class PyAVSource(VideoSource):
    """PyAV over the file, used when decord is not importable (or `tool.backend=pyav`). Frames are decoded in
    timestamp order: one seek to the first wanted frame, then forward decoding, seeking again only across a gap
    longer than `SEEK_GAP_S` (a later GOP), instead of one seek per frame."""

    SEEK_GAP_S = 2.0

    def __init__(self, path: str, max_pixels: int = MAX_SOURCE_PIXELS):
        import av

        codec, w, h = _checked_probe(path)
        self.size = scaled_size(w, h, max_pixels)
        try:
            with av.open(path) as c:
                st = c.streams.video[0]
                self.fps = float(st.average_rate or st.guessed_rate or 0)
                secs = float(st.duration * st.time_base) if st.duration else (c.duration or 0) / 1e6
                self.num_frames = int(st.frames) or int(round(secs * self.fps))
                st.codec_context.open()  # fails here when this FFmpeg build has no decoder for the codec
        except Exception as e:  # noqa: BLE001 - av.FFmpegError and friends
            raise VideoError(path, f"unsupported codec {codec}: pyav cannot decode it ({_short(e)})") from None
        if self.num_frames <= 0 or not self.fps > 0:
            raise VideoError(path, "no decodable frames")
        self.path = path
        self.pixels = self.size[0] * self.size[1] if self.size else w * h
        self.duration = self.num_frames / self.fps

    def get_frames(self, times: list[float]) -> np.ndarray:
        import av

        order = sorted(range(len(times)), key=lambda i: times[i])
        out: list = [None] * len(times)
        half = 0.5 / self.fps
        try:
            with av.open(self.path) as c:
                st = c.streams.video[0]
                base = float(st.start_time * st.time_base) if st.start_time is not None else 0.0
                k, last, frames = 0, None, None
                while k < len(order):
                    t = times[order[k]]
                    if frames is None or last is None or t - last > self.SEEK_GAP_S:
                        c.seek(int((base + max(0.0, t - half)) / st.time_base), stream=st, backward=True)
                        frames = c.decode(st)
                    for fr in frames:
                        last = float(fr.pts * st.time_base) - base if fr.pts is not None else (last or 0.0)
                        if last + half < t:
                            continue  # before the wanted frame: decoded, never converted
                        img = fr.to_ndarray(format="rgb24", **({"width": self.size[0], "height": self.size[1]}
                                                               if self.size else {}))
                        while k < len(order) and times[order[k]] - half <= last:
                            out[order[k]] = img
                            k += 1
                        if k == len(order) or times[order[k]] - last > self.SEEK_GAP_S:
                            break
                    else:  # end of stream: later times get the last frame (as decord clamps the index)
                        if last is None or not any(o is not None for o in out):
                            raise VideoError(self.path, "no decodable frames")
                        fill = next(o for o in reversed([out[i] for i in order]) if o is not None)
                        for i in order[k:]:
                            out[i] = fill
                        k = len(order)
        except VideoError:
            raise
        except Exception as e:  # noqa: BLE001
            raise VideoError(self.path, _short(e)) from None
        return np.stack(out)


def decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def _checked_probe(path: str) -> tuple[str, int, int]:
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
        raise VideoError(path, _short(e)) from None


def scaled_size(w: int, h: int, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) within `max_pixels`, aspect kept, even sides; None when the frame already fits."""
    if w * h <= max_pixels:
        return None
    scale = math.sqrt(max_pixels / (w * h))
    return max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)


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
        try:
            with Image.open(files[0]) as im:  # header only
                self.pixels = im.width * im.height
        except OSError as e:
            raise VideoError(files[0], _short(e)) from None

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


def open_video(path: str, backend: str = "decord", frame_fps: float = 2.0,
               max_pixels: int = MAX_SOURCE_PIXELS) -> VideoSource:
    """Open (and cache, LRU 8 per process) a video: tool actors serve many calls on the same file."""
    try:
        stamp = os.path.getmtime(path) if backend != "frames" else 0.0
    except OSError:
        raise VideoError(path, "no such file") from None
    key = (path, backend, stamp, max_pixels)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    if backend == "decord" and not decord_available():
        backend = "pyav"  # decord ships only a Linux x86-64 wheel; PyAV is always installed
    if backend == "frames":
        src = FrameDirSource(path, frame_fps)
    else:
        src = DecordSource(path, max_pixels) if backend == "decord" else PyAVSource(path, max_pixels)
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
        out += _finish(src.get_frames(times[i:i + per]), stamps[i:i + per], min_pixels, max_pixels, draw)
    if len(out) % 2:
        out.append(out[-1])
    return np.stack(out).astype(np.uint8, copy=False)


def _finish(frames: np.ndarray, stamps: list[float], min_pixels: int, max_pixels: int, draw: bool) -> list:
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


def sample_global_view(path: str, duration: float, cfg, backend: str = "decord",
                       max_source_pixels: int = MAX_SOURCE_PIXELS) -> VideoClip:
    """Uniform frames over the whole video: at `cfg.fps`, at most `cfg.max_frames` (VITAL's global view).
    A record claiming more seconds than the file holds is an error (its tool calls and labels would be off)."""
    src = open_video(path, backend, max_pixels=max_source_pixels)
    if duration and duration > src.duration * DURATION_SLACK[0] + DURATION_SLACK[1]:
        raise VideoError(path, f"the record's duration {duration:.2f} s exceeds the file's {src.duration:.2f} s")
    duration = min(duration, src.duration) if duration and duration > 0 else src.duration
    times = global_view_times(duration, cfg.fps, cfg.max_frames)
    n = len(times)
    frames = read_frames(src, times, times, cfg.min_pixels, cfg.max_pixels, cfg.draw_timestamps)
    return VideoClip(frames, n / duration, 0.0, duration, times)
