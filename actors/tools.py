"""Video tool pool: CPU actors running the clip tool (tool.decoder, the frame store); frames go to the object store
by reference. Calls on a video go to the worker that has it warm (video affinity), else the least-loaded one.

Each call returns two object refs: small metadata, and the uint8 frames. The caller owns both (they are task
returns), so the frames outlive the tool actor that decoded them, and the driver never fetches pixels.
Actors restart when they die and their in-flight calls are retried (the tool is idempotent). A call that
overruns `tool.timeout_s` is cancelled and its worker restarted; should Ray still re-deliver it to the restarted
worker (cancel and kill race), the call's deadline has passed and the worker returns at once without decoding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter, OrderedDict, deque

import numpy as np
import ray

from actors.common import wait_placed
from vital_ray.config import ToolConfig, ToolPoolConfig, VideoViewConfig
from vital_ray.tools.scaling import needed_workers, placement_options, resource_request, shrink_due

_EMPTY = np.zeros((0, 0, 0, 3), dtype=np.uint8)
MAX_WARM_VIDEOS = 4096  # video -> worker entries kept for affinity (least recently used dropped)


def _split(result) -> tuple[dict, np.ndarray]:
    """ToolResult -> (metadata dict, frames)."""
    clip = result.clip
    meta = {"ok": result.ok, "text": result.text, "error": result.error}
    if clip is None:
        return meta, _EMPTY
    meta.update(shape=tuple(clip.frames.shape), fps=float(clip.fps), start=float(clip.start), end=float(clip.end),
                timestamps=list(clip.timestamps), source=clip.source)
    return meta, clip.frames


def _expired() -> tuple[dict, np.ndarray]:
    """A call re-delivered after the pool gave up on it (timed out): nobody waits for it, so do no work."""
    return {"ok": False, "text": "Error: expired", "error": "expired"}, _EMPTY


def run_tool_call(name: str, arguments: dict, video: str, duration: float, cfg: ToolConfig):
    """One clip-tool call -> (metadata, uint8 frames); shared by the training pool and the Serve deployment."""
    from vital_ray.tools.clip_tool import execute_tool_call

    return _split(execute_tool_call(name, arguments, video, duration, cfg))


def run_global_view(video: str, duration: float, cfg: VideoViewConfig, tool_cfg: ToolConfig = ToolConfig()):
    """The prompt's global view -> (metadata, uint8 frames), read like the clip tool's frames (`tool_cfg`: the
    decoder, the frame store, tool.max_source_pixels); an unreadable video is an error result."""
    from vital_ray.tools.clip_tool import ToolResult
    from vital_ray.tools.sources import open_source
    from vital_ray.tools.video_io import VideoError, sample_global_view

    try:
        src = open_source(video, tool_cfg, (cfg.min_pixels, cfg.max_pixels))
        clip = sample_global_view(video, duration, cfg, src=src)
        return _split(ToolResult(ok=True, clip=clip, error=None, text=""))
    except VideoError as e:
        return _split(ToolResult(ok=False, clip=None, error=str(e), text=f"Error: {e}"))


@ray.remote(max_restarts=-1, max_task_retries=-1)
class ToolWorker:
    def __init__(self, tool_cfg: ToolConfig, view_cfg: VideoViewConfig):
        # the decoder is imported here, before the worker counts as ready, not inside the first call's timeout:
        # torchcodec imports torch (seconds on a busy machine); decord and PyAV keep a new worker up in well under
        # a second, which is what makes scaling up on a burst of tool calls pay off
        from vital_ray.tools.decoders import resolve

        resolve(tool_cfg.decoder)  # imports the decoder it picks; the calls resolve it again, from a cache
        self.tool_cfg, self.view_cfg = tool_cfg, view_cfg
        self.calls = 0
        self.node = ray.get_runtime_context().get_node_id()  # in every result: where calls ran, as the pool grows

    def ping(self) -> int:
        return self.calls

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    @ray.method(num_returns=2)
    def call(self, name: str, arguments: dict, video: str, duration: float, deadline: float = float("inf")):
        if time.time() > deadline:
            return _expired()
        self.calls += 1
        meta, frames = run_tool_call(name, arguments, video, duration, self.tool_cfg)
        return {**meta, "node_id": self.node}, frames

    @ray.method(num_returns=2)
    def global_view(self, video: str, duration: float, overrides: dict | None = None,
                    deadline: float = float("inf")):
        """`overrides`: a record's checked video_kwargs (vital_ray.data.records.view_kwargs)."""
        if time.time() > deadline:
            return _expired()
        self.calls += 1
        cfg = dataclasses.replace(self.view_cfg, **overrides) if overrides else self.view_cfg
        meta, frames = run_global_view(video, duration, cfg, self.tool_cfg)
        return {**meta, "node_id": self.node}, frames


def source_metrics(sources: Counter) -> dict:
    """tool/decoder/<name> (calls each decoder served), tool/source/{store,decode}, tool/store_hit_rate."""
    store = sources.get("store", 0)
    decoded = sum(n for s, n in sources.items() if s != "store")
    out = {f"tool/decoder/{s}": n for s, n in sorted(sources.items()) if s != "store"}
    out.update({"tool/source/store": store, "tool/source/decode": decoded,
                "tool/store_hit_rate": store / (store + decoded) if store + decoded else 0.0})
    return out


class ToolPool:
    """Dispatch over ToolWorker actors with a pool-side queue, a timeout per call, a retry on another worker, and
    autoscaling between `min_workers` and `max_workers` (policy: `vital_ray.tools.scaling`).

    A call takes a free slot (`max_concurrency` per worker) on the least-loaded ready worker, or waits in the pool's
    queue, so the queue depth is visible and a new worker takes waiting calls as soon as it is up. Growing happens on
    dispatch; shrinking on dispatch and on a background tick (a pool with nothing to do must still shrink). A worker
    being removed first stops taking calls (draining) and is killed only when its in-flight calls have finished.
    Frames it returned stay readable: they live in the node's object store, owned by the caller.
    """

    def __init__(self, tool_cfg: ToolConfig, view_cfg: VideoViewConfig, pool_cfg: ToolPoolConfig):
        self.tool_cfg, self.view_cfg, self.pool_cfg = tool_cfg, view_cfg, pool_cfg
        self.workers: list = []  # ready, taking calls
        self.starting: dict = {}  # ping ref -> worker, not yet up
        self.draining: list = []  # no new calls; killed once idle
        self.inflight: dict[int, int] = {}
        self.waiting = 0  # calls queued in the pool for a free slot
        self.latencies: list[float] = []  # since the last stats()
        self.frames = 0  # frames returned since the last stats()
        self.sources: Counter = Counter()  # where frames came from (decoder name or "store") since the last stats()
        self.affinity_hits = 0  # calls routed to their video's warm worker since the last stats()
        self._warm: OrderedDict[str, int] = OrderedDict()  # video -> id() of the worker that served it last
        self._stats_t = time.time()
        # (time, workers incl. starting, outstanding calls) at each change; bounded for long runs
        self.history: deque[tuple[float, int, int]] = deque(maxlen=100_000)
        self.timeouts = 0
        self.telemetry = None  # optional vital_ray.telemetry.Telemetry
        self._lock = threading.RLock()
        self._waiters: list = []  # (loop, future) of calls waiting for a slot
        self._over_since: float | None = None
        self._requested: int | None = None
        for _ in range(pool_cfg.min_workers):
            self.add_worker()
        self._promote(block=True)
        self._request(pool_cfg.min_workers)
        self._stop = threading.Event()
        self._ticker = None
        if pool_cfg.max_workers > pool_cfg.min_workers:
            self._ticker = threading.Thread(target=self._tick_loop, name="tool-pool-autoscaler", daemon=True)
            self._ticker.start()

    # -- membership -------------------------------------------------------------------------------------------
    def add_worker(self):
        opts = {"num_cpus": self.pool_cfg.num_cpus_per_worker, "max_concurrency": self.pool_cfg.max_concurrency,
                **placement_options(self.pool_cfg)}
        w = ToolWorker.options(**opts).remote(self.tool_cfg, self.view_cfg)
        with self._lock:
            self.starting[w.ping.remote()] = w
            self.inflight[id(w)] = 0
        return w

    def _promote(self, block: bool = False) -> None:
        """Move workers whose actor is up from `starting` to `workers`."""
        if block and self.starting:
            wait_placed(list(self.starting), "tool workers")
        with self._lock:  # the event loop and the background tick both promote
            if not self.starting:
                return
            refs = list(self.starting)
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            moved = [self.starting.pop(r) for r in ready]
            self.workers += moved
        if moved:
            self._wake(len(moved) * self.pool_cfg.max_concurrency)

    @property
    def size(self) -> int:
        """Workers counted against max_workers (ready + starting)."""
        return len(self.workers) + len(self.starting)

    @property
    def queued(self) -> int:
        """Outstanding calls: running on a worker or waiting in the pool."""
        return sum(self.inflight.values()) + self.waiting

    def autoscale(self) -> None:
        """One scaling step; safe from the event loop and from the background tick."""
        self._promote()
        with self._lock:
            now = time.monotonic()
            need = needed_workers(self.queued, self.pool_cfg)
            grow = need - self.size
            if need >= len(self.workers):
                self._over_since = None
            elif self._over_since is None:
                self._over_since = now
            elif shrink_due(self._over_since, now, self.pool_cfg):
                for w in sorted(self.workers, key=lambda w: self.inflight[id(w)])[:len(self.workers) - need]:
                    self.workers.remove(w)
                    self.draining.append(w)
                self._over_since = None
            for w in [w for w in self.draining if self.inflight[id(w)] == 0]:  # drained: nothing in flight
                self.draining.remove(w)
                del self.inflight[id(w)]
                ray.kill(w)
            for _ in range(max(grow, 0)):  # under the lock: the tick and the event loop must not both grow
                self.add_worker()
            if not self.history or self.history[-1][1:] != (self.size, self.queued):
                self.history.append((time.time(), self.size, self.queued))
            self._request(self.size)  # in order with the size it reports
        if self.telemetry is not None:
            self.telemetry.tool_pool(self.queued, self.size)

    def _request(self, workers: int) -> None:
        """Tell the autoscaler how many tool bundles the pool wants (a persistent, overriding request)."""
        if self.pool_cfg.request_resources and workers != self._requested:
            from ray.autoscaler.sdk import request_resources

            request_resources(**resource_request(workers, self.pool_cfg))
            self._requested = workers

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.pool_cfg.autoscale_interval_s):
            try:
                self.autoscale()
            except Exception as e:  # noqa: BLE001 - keep ticking; Ray shutting down under us ends the loop
                if not ray.is_initialized():
                    return
                print(f"tool pool autoscale failed: {e}", flush=True)

    # -- dispatch ---------------------------------------------------------------------------------------------
    def _take_slot(self, video: str | None = None):
        """A free slot: on `video`'s warm worker unless it is busier than the least-loaded by more than
        affinity_slack, else on the least-loaded worker."""
        with self._lock:
            free = [w for w in self.workers if self.inflight[id(w)] < self.pool_cfg.max_concurrency]
            if not free:
                return None
            w = min(free, key=lambda w: self.inflight[id(w)])
            warm_id = self._warm.get(video) if video is not None and self.pool_cfg.affinity else None
            warm = next((x for x in free if id(x) == warm_id), None)
            if warm is not None and self.inflight[id(warm)] <= self.inflight[id(w)] + self.pool_cfg.affinity_slack:
                w = warm
                self.affinity_hits += 1
            self.inflight[id(w)] += 1
            return w

    def _served(self, video: str, w) -> None:
        with self._lock:
            self._warm[video] = id(w)
            self._warm.move_to_end(video)
            while len(self._warm) > MAX_WARM_VIDEOS:
                self._warm.popitem(last=False)

    async def _acquire(self, video: str | None = None):
        w = self._take_slot(video)
        if w is not None:
            return w
        loop = asyncio.get_running_loop()
        self.waiting += 1
        self.autoscale()  # a queued call may be what makes the pool grow
        try:
            while True:
                waiter = (loop, loop.create_future())
                with self._lock:
                    self._waiters.append(waiter)
                try:
                    w = self._take_slot(video)  # a slot may have freed between the last try and registering
                    if w is not None:
                        return w
                    # woken by a finished call or a promoted worker; the timeout is a safety net
                    await asyncio.wait_for(waiter[1], self.pool_cfg.autoscale_interval_s)
                except asyncio.TimeoutError:
                    pass
                finally:
                    with self._lock:
                        if waiter in self._waiters:
                            self._waiters.remove(waiter)
                w = self._take_slot(video)
                if w is not None:
                    return w
        finally:
            self.waiting -= 1

    def _release(self, w) -> None:
        with self._lock:
            self.inflight[id(w)] -= 1
        self._wake(1)

    def _wake(self, n: int) -> None:
        with self._lock:
            woken, self._waiters = self._waiters[:n], self._waiters[n:]
        for loop, fut in woken:
            try:
                loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))
            except RuntimeError:  # that call's event loop has ended
                pass

    async def _run(self, method: str, video: str, *args) -> tuple[dict, ray.ObjectRef]:
        last_error = ""
        for attempt in range(self.tool_cfg.max_retries + 1):
            w = await self._acquire(video)
            self.autoscale()
            t0 = time.perf_counter()
            # wall-clock deadline (the worker may be on another node): a retry Ray makes after our timeout is void
            meta_ref, frames_ref = getattr(w, method).remote(*args, time.time() + self.tool_cfg.timeout_s)
            try:
                meta = await asyncio.wait_for(asyncio.wrap_future(meta_ref.future()), self.tool_cfg.timeout_s)
                meta["latency_s"] = time.perf_counter() - t0
                self.latencies.append(meta["latency_s"])
                frames = int((meta.get("shape") or (0,))[0])
                self.frames += frames
                if meta.get("source"):
                    self.sources[meta["source"]] += 1
                    self._served(video, w)  # its reader (and its node's store) now hold this video
                meta["worker"] = w._actor_id.hex()
                if self.telemetry is not None:
                    self.telemetry.tool_call(meta["latency_s"], frames, self.queued)
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
                self._release(w)
        text = f"Error: get_video_clip_frame tool execution failed: {last_error}"
        return {"ok": False, "text": text, "error": last_error, "attempts": self.tool_cfg.max_retries + 1}, None

    async def call(self, name: str, arguments: dict, video: str, duration: float):
        return await self._run("call", video, name, arguments, video, duration)

    async def global_view(self, video: str, duration: float, overrides: dict | None = None):
        return await self._run("global_view", video, video, duration, dict(overrides or {}))

    def stats(self) -> dict:
        """Since the previous call (one iteration): calls, frames, latency, pool size and queue peaks; the same
        quantities the dashboard gauges show, for metrics.jsonl / wandb."""
        lat, self.latencies = self.latencies, []
        frames, self.frames = self.frames, 0
        sources, self.sources = self.sources, Counter()
        affinity, self.affinity_hits = self.affinity_hits, 0
        hist = [h for h in self.history if h[0] >= self._stats_t] or [(0.0, self.size, self.queued)]
        self._stats_t = time.time()
        return {"tool/workers": self.size, "tool/peak_workers": max(h[1] for h in hist),
                "tool/peak_queue": max(h[2] for h in hist), "tool/calls": len(lat), "tool/frames": frames,
                "tool/latency_p50_s": float(np.median(lat)) if lat else 0.0, **source_metrics(sources),
                "tool/affinity_hits": affinity}

    def shutdown(self):
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=10)
        with self._lock:
            everyone = self.workers + list(self.starting.values()) + self.draining
            self.workers, self.starting, self.draining = [], {}, []
        for w in everyone:
            ray.kill(w)
        if self.pool_cfg.request_resources and self._requested:
            self._request(0)  # withdraw the demand so the autoscaler can remove tool nodes
