"""Where a tool call's frames come from: the frame store when it holds the video, else a decoder (and, on a
miss, a background fill of the store so the video's next calls hit it)."""

from __future__ import annotations

from vital_ray.tools.decoders.base import Budget, VideoSource
from vital_ray.tools.frame_store import store_for
from vital_ray.tools.video_io import open_video


def open_source(path: str, cfg, budget: Budget) -> VideoSource:
    """`cfg`: the ToolConfig (decoder and store settings); `budget`: the (min, max) pixels wanted."""
    store = store_for(cfg)
    if store is not None and (src := store.get(path)) is not None:
        return src
    src = open_video(path, cfg.decoder, cfg.source_fps, cfg.max_source_pixels, budget)
    if store is not None and cfg.store_fill_on_miss:  # only after the video opened: a broken one is never stored
        store.fill_async(path)
    return src
