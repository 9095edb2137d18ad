"""Decoders behind one interface (`base.VideoSource`), chosen by `tool.decoder`.

`auto` takes the first of AUTO_ORDER that imports and decodes on this machine. The order is by measurement
(benchmarks/tool_decode.py, one core, cold 64-frame clips): torchcodec, then decord, then PyAV. torchcodec needs
FFmpeg's shared libraries and decord ships only a Linux x86-64 wheel, so either may be absent; PyAV always works.
"""

from __future__ import annotations

import functools
import re

from vital_ray.tools.decoders.base import VideoError, VideoSource

DECODERS = ("torchcodec", "decord", "pyav")  # decode the file; `frames` reads VITAL's JPEG layout instead
AUTO_ORDER = DECODERS
CHOICES = ("auto", *DECODERS, "frames")


@functools.cache
def unavailable(name: str) -> str | None:
    """Why decoder `name` cannot run here (None: it can). Importing is the test that matters: torchcodec's
    import loads its FFmpeg libraries and fails when they are missing."""
    try:
        if name == "torchcodec":
            from torchcodec.decoders import VideoDecoder  # noqa: F401
        elif name == "decord":
            import decord  # noqa: F401
        elif name == "pyav":
            import av  # noqa: F401
    except Exception as e:  # noqa: BLE001 - ImportError, OSError / RuntimeError from a shared library
        text = str(e).strip()
        missing = sorted(set(re.findall(r"(lib[a-z0-9_]+\.so(?:\.\d+)*): cannot open", text)))
        if missing:  # torchcodec tries each FFmpeg major version it supports
            return f"missing shared libraries {', '.join(missing)} (FFmpeg: apt-get install ffmpeg)"
        return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:300]
    return None


def resolve(name: str) -> str:
    """`auto` -> the first available decoder of AUTO_ORDER; an explicit decoder that cannot run falls back the
    same way, so a config written on a machine with decord still runs where only PyAV is."""
    if name == "frames":
        return name
    if name != "auto" and unavailable(name) is None:
        return name
    return next(d for d in AUTO_ORDER if unavailable(d) is None)


def open_decoder(name: str, path: str, max_source_pixels: int, budget=None, frame_fps: float = 2.0) -> VideoSource:
    """Open `path` with decoder `name` (already resolved)."""
    if name == "frames":
        from vital_ray.tools.decoders.frames import FrameDirSource

        return FrameDirSource(path, frame_fps)
    if name == "torchcodec":
        from vital_ray.tools.decoders.torchcodec_decoder import TorchcodecSource as cls
    elif name == "decord":
        from vital_ray.tools.decoders.decord_decoder import DecordSource as cls
    elif name == "pyav":
        from vital_ray.tools.decoders.pyav_decoder import PyAVSource as cls
    else:
        raise ValueError(f"unknown decoder {name!r}; one of {CHOICES}")
    return cls(path, max_source_pixels, budget)


__all__ = ["AUTO_ORDER", "CHOICES", "DECODERS", "VideoError", "VideoSource", "open_decoder", "resolve", "unavailable"]
