"""VITAL's frame layout as a read-only store: `<video path without extension>/*_<int>.jpg` at `fps` frames per
second, extracted beforehand (VITAL's own tool reads only these)."""

from __future__ import annotations

import glob
import math
import os
import re

import numpy as np
from PIL import Image

from vital_ray.tools.decoders.base import VideoError, VideoSource, short


class FrameDirSource(VideoSource):
    name = "frames"

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
            raise VideoError(files[0], short(e)) from None

    def get_frames(self, times: list[float]) -> np.ndarray:
        out = []
        for t in times:
            f = self.files[min(self.num_frames - 1, max(0, int(math.floor(t * self.fps + 1e-6))))]
            try:
                with Image.open(f) as im:
                    out.append(np.asarray(im.convert("RGB")))
            except OSError as e:
                raise VideoError(f, short(e)) from None
        return np.stack(out)
