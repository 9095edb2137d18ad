"""Video tool pool: CPU actors running the clip tool with decord; frames go to the object store by reference.

Each call returns two object refs: small metadata, and the uint8 frames. The caller owns both (they are task
returns), so the frames outlive the tool actor that decoded them, and the driver never fetches pixels.
Actors restart when they die and their in-flight calls are retried (the tool is idempotent). A call that
overruns `tool.timeout_s` is cancelled (so never retried) and its worker restarted.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np
import ray

from actors.common import limit_threads
from vital_ray.config import ToolConfig, ToolPoolConfig, VideoViewConfig

_EMPTY = np.zeros((0, 0, 0, 3), dtype=np.uint8)


def _split(result) -> tuple[dict, np.ndarray]:
    """ToolResult -> (metadata dict, frames)."""
    clip = result.clip
    meta = {"ok": result.ok, "text": result.text, "error": result.error}
    if clip is None:
        return meta, _EMPTY
    meta.update(shape=tuple(clip.frames.shape), fps=float(clip.fps), start=float(clip.start), end=float(clip.end),
                timestamps=list(clip.timestamps))
    return meta, clip.frames


@ray.remote(max_restarts=-1, max_task_retries=-1)
class ToolWorker:
    def __init__(self, tool_cfg: ToolConfig, view_cfg: VideoViewConfig):
        limit_threads(1)
        self.tool_cfg, self.view_cfg = tool_cfg, view_cfg
        self.calls = 0

    def ping(self) -> int:
        return self.calls

    @ray.method(num_returns=2)
    def call(self, name: str, arguments: dict, video: str, duration: float):
        from vital_ray.tools.clip_tool import execute_tool_call

        self.calls += 1
        return _split(execute_tool_call(name, arguments, video, duration, self.tool_cfg))

    @ray.method(num_returns=2)
    def global_view(self, video: str, duration: float):
        from vital_ray.tools.clip_tool import ToolResult
        from vital_ray.tools.video_io import VideoError, sample_global_view

        self.calls += 1
        try:
            clip = sample_global_view(video, duration, self.view_cfg, max_source_pixels=self.tool_cfg.max_source_pixels)
            return _split(ToolResult(ok=True, clip=clip, error=None, text=""))
        except VideoError as e:
            return _split(ToolResult(ok=False, clip=None, error=str(e), text=f"Error: {e}"))


class ToolPool:
    """Least-loaded dispatch over ToolWorker actors, with a timeout per call and a retry on another worker."""

    def __init__(self, tool_cfg: ToolConfig, view_cfg: VideoViewConfig, pool_cfg: ToolPoolConfig):
        self.tool_cfg, self.view_cfg, self.pool_cfg = tool_cfg, view_cfg, pool_cfg
        self.workers: list = []
        self.inflight: dict[int, int] = {}
        self._ids = itertools.count()
        self.latencies: list[float] = []
        self.timeouts = 0
        self.telemetry = None  # optional vital_ray.telemetry.Telemetry
        for _ in range(pool_cfg.min_workers):
            self.add_worker()

    def add_worker(self):
        opts = {"num_cpus": self.pool_cfg.num_cpus_per_worker, "max_concurrency": self.pool_cfg.max_concurrency}
        w = ToolWorker.options(**opts).remote(self.tool_cfg, self.view_cfg)
        self.workers.append(w)
        self.inflight[id(w)] = 0
        return w

    @property
    def queued(self) -> int:
        return sum(self.inflight.values())

    def _pick(self):
        return min(self.workers, key=lambda w: self.inflight[id(w)])

    async def _run(self, method: str, *args) -> tuple[dict, ray.ObjectRef]:
        last_error = ""
        for attempt in range(self.tool_cfg.max_retries + 1):
            w = self._pick()
            self.inflight[id(w)] += 1
            t0 = time.perf_counter()
            meta_ref, frames_ref = getattr(w, method).remote(*args)
            try:
                meta = await asyncio.wait_for(asyncio.wrap_future(meta_ref.future()), self.tool_cfg.timeout_s)
                self.latencies.append(time.perf_counter() - t0)
                meta["latency_s"] = time.perf_counter() - t0
                if self.telemetry is not None:
                    shape = meta.get("shape") or (0,)
                    self.telemetry.tool_call(meta["latency_s"], int(shape[0]), self.queued)
                meta["attempts"] = attempt + 1
                return meta, frames_ref
            except asyncio.TimeoutError:
                last_error = f"timed out after {self.tool_cfg.timeout_s:g}s"
                # a running call on a threaded actor cannot be interrupted: restart the worker so the hung call
                # stops holding one of its threads; its other in-flight calls fail over to their retries
                ray.cancel(meta_ref, force=False)
                ray.kill(w, no_restart=False)
                self.timeouts += 1
            except ray.exceptions.RayError as e:  # actor lost beyond restarts, etc.: retry elsewhere
                last_error = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            finally:
                self.inflight[id(w)] -= 1
        text = f"Error: get_video_clip_frame tool execution failed: {last_error}"
        return {"ok": False, "text": text, "error": last_error, "attempts": self.tool_cfg.max_retries + 1}, None

    async def call(self, name: str, arguments: dict, video: str, duration: float):
        return await self._run("call", name, arguments, video, duration)

    async def global_view(self, video: str, duration: float):
        return await self._run("global_view", video, duration)

    def stats(self) -> dict:
        lat = self.latencies
        return {"tool/workers": len(self.workers), "tool/calls": len(lat),
                "tool/latency_p50_s": float(np.median(lat)) if lat else 0.0}

    def shutdown(self):
        for w in self.workers:
            ray.kill(w)
        self.workers.clear()
