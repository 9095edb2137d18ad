"""PyAV over the file (always installed: the fallback everywhere). Frames are decoded in timestamp order, seeking
only when a keyframe lies between the last decoded frame and the next wanted one (keyframe times are predicted
from the interval seen while decoding), and only the wanted frames are converted to RGB, at the output size."""

from __future__ import annotations

import math
import threading

import numpy as np

from vital_ray.tools.decoders.base import Budget, VideoError, VideoSource, checked_probe, decode_size, short


class PyAVSource(VideoSource):
    name = "pyav"
    MIN_SEEK_GAP_S = 2.0  # until a keyframe interval has been seen, seek across gaps longer than this

    def __init__(self, path: str, max_source_pixels: int, budget: Budget | None = None):
        import av

        codec, w, h = checked_probe(path)
        self.size = decode_size(w, h, max_source_pixels, budget)
        try:
            self.container = av.open(path)
            st = self.container.streams.video[0]
            self.fps = float(st.average_rate or st.guessed_rate or 0)
            secs = float(st.duration * st.time_base) if st.duration else (self.container.duration or 0) / 1e6
            self.num_frames = int(st.frames) or int(round(secs * self.fps))
            st.codec_context.open()  # fails here when this FFmpeg build has no decoder for the codec
        except Exception as e:  # noqa: BLE001 - av.FFmpegError and friends
            raise VideoError(path, f"unsupported codec {codec}: pyav cannot decode it ({short(e)})") from None
        self._opened(path, self.size, w, h)
        self.gop_s: float | None = None  # keyframe interval seen last (None: not yet)
        self.lock = threading.Lock()

    def _rgb(self, fr) -> np.ndarray:
        size = {"width": self.size[0], "height": self.size[1]} if self.size else {}
        return fr.to_ndarray(format="rgb24", **size)

    def get_frames(self, times: list[float]) -> np.ndarray:
        try:
            with self.lock:
                return self._decode(times)
        except VideoError:
            raise
        except Exception as e:  # noqa: BLE001
            raise VideoError(self.path, short(e)) from None

    def _seek_pays(self, last: float, last_key: float | None, t: float) -> bool:
        """Seeking to `t` lands on the keyframe before it: cheaper than decoding on from `last` exactly when that
        keyframe comes after `last` (expected at last_key + m * gop_s)."""
        if self.gop_s is None or last_key is None:
            return t - last > self.MIN_SEEK_GAP_S
        next_key = last_key + self.gop_s * (math.floor((last - last_key) / self.gop_s + 1e-6) + 1)
        return next_key <= t + 0.5 / self.fps

    def _decode(self, times: list[float]) -> np.ndarray:
        c = self.container
        st = c.streams.video[0]
        order = sorted(range(len(times)), key=lambda i: times[i])
        out: list = [None] * len(times)
        half = 0.5 / self.fps
        base = float(st.start_time * st.time_base) if st.start_time is not None else 0.0
        k, last, frames, last_key = 0, None, None, None
        while k < len(order):
            t = times[order[k]]
            if frames is None or last is None or self._seek_pays(last, last_key, t):
                c.seek(int((base + max(0.0, t - half)) / st.time_base), stream=st, backward=True)
                frames, last_key = c.decode(st), None
            for fr in frames:
                last = float(fr.pts * st.time_base) - base if fr.pts is not None else (last or 0.0)
                if fr.key_frame:
                    if last_key is not None and last > last_key:
                        self.gop_s = last - last_key
                    last_key = last
                if last + half < times[order[k]]:
                    continue  # before the next wanted frame: decoded, never converted
                img = self._rgb(fr)
                while k < len(order) and times[order[k]] - half <= last:
                    out[order[k]] = img
                    k += 1
                if k == len(order) or self._seek_pays(last, last_key, times[order[k]]):
                    break
            else:  # end of stream: later times get the last frame (as the index-based decoders clamp)
                if last is None or not any(o is not None for o in out):
                    raise VideoError(self.path, "no decodable frames")
                fill = next(o for o in reversed([out[i] for i in order]) if o is not None)
                for i in order[k:]:
                    out[i] = fill
                k = len(order)
                frames = None
        return np.stack(out)
