"""Multi-turn tool rollouts, scheduled asynchronously over a generation pool and a tool pool.

A trajectory that stops at `</tool_call>` leaves the generation queue while its clip is cut; the others keep
generating. When the clip's object ref comes back, the tool turn is appended and the trajectory re-queues.
Everything about *what* happens to a trajectory lives in `trajectory.py`/`parser.py`; this file is only *when*.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from vital_ray.config import RolloutConfig
from vital_ray.rollout.engine import GenResult, SamplingParams
from vital_ray.rollout.trajectory import (TokenCodec, Trajectory, VideoRef, append_generation, append_tool_turn,
                                          finish, new_trajectory, remaining_budget)
from vital_ray.tools.parser import parse_turn

GenerateFn = Callable[[list[dict], SamplingParams], Awaitable[list[GenResult]]]
ToolFn = Callable[[str, dict, str, float], Awaitable[tuple[dict, object]]]
GlobalViewFn = Callable[[str, float], Awaitable[tuple[dict, object]]]


async def start_group(codec: TokenCodec, global_view: GlobalViewFn, record, group_size: int,
                      tool_schemas: list[dict] | None) -> tuple[list[Trajectory], str | None]:
    """Trajectories for one prompt, sharing its global view: -> (group, None) or ([], why the video failed).
    Used by training (tool pool) and serving (tool deployment). A record with duration <= 0 (a served request)
    takes the duration the video decoder measured."""
    meta, frames = await global_view(record.video, record.duration)
    if not meta.get("ok"):
        return [], meta.get("error") or "global view failed"
    if not record.duration or record.duration <= 0:
        record = dataclasses.replace(record, duration=float(meta["end"]))
    view = VideoRef.from_meta(meta, frames)
    uid = uuid.uuid4().hex[:12]
    return [new_trajectory(codec, record, view, uid, i, tool_schemas) for i in range(group_size)], None


@dataclass
class RolloutStats:
    wall_s: float = 0.0
    gen_busy_s: float = 0.0  # summed over generation calls
    tool_wait_s: float = 0.0  # time with tool calls pending and no generation running
    new_tokens: int = 0
    tool_latencies: list[float] = field(default_factory=list)

    def as_metrics(self, num_gen_workers: int) -> dict:
        lat = sorted(self.tool_latencies)
        return {
            "rollout/wall_s": self.wall_s,
            "rollout/tokens_per_s": self.new_tokens / self.wall_s if self.wall_s else 0.0,
            "rollout/engine_util": self.gen_busy_s / (self.wall_s * num_gen_workers) if self.wall_s else 0.0,
            "rollout/tool_wait_share": self.tool_wait_s / self.wall_s if self.wall_s else 0.0,
            "tool/latency_mean_s": sum(lat) / len(lat) if lat else 0.0,
            "tool/latency_max_s": lat[-1] if lat else 0.0,
        }


def video_pixels(t: Trajectory) -> int:
    return sum(v.shape[0] * v.shape[1] * v.shape[2] for v in t.videos)


class RolloutScheduler:
    def __init__(self, codec: TokenCodec, cfg: RolloutConfig, sampling: SamplingParams, generate: GenerateFn,
                 call_tool: ToolFn, num_gen_workers: int, tools_enabled: bool = True):
        self.codec, self.cfg, self.sampling = codec, cfg, sampling
        self.generate_fn, self.tool_fn = generate, call_tool
        self.slots = num_gen_workers
        self.tools_enabled = tools_enabled

    def _request(self, t: Trajectory) -> dict:
        return {"key": t.sample_id, "token_ids": t.token_ids,
                "videos": [(v.frames, v.second_per_grid) for v in t.videos],
                "max_new_tokens": min(self.cfg.max_tokens_per_turn, remaining_budget(t, self.cfg.max_total_tokens))}

    async def run(self, trajectories: list[Trajectory]) -> RolloutStats:
        stats = RolloutStats()
        t_start = time.perf_counter()
        ready: deque[Trajectory] = deque(t for t in trajectories if not t.done)
        by_key = {t.sample_id: t for t in trajectories}
        gens: set[asyncio.Task] = set()
        tools: set[asyncio.Task] = set()
        idle_since: float | None = None
        while ready or gens or tools:
            while ready and len(gens) < self.slots:
                batch = self._take(ready)
                gens.add(asyncio.ensure_future(self._timed_generate([self._request(t) for t in batch])))
            if not gens and tools and idle_since is None:
                idle_since = time.perf_counter()
            done, _ = await asyncio.wait(gens | tools, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in gens:
                    gens.discard(task)
                    results, busy = task.result()
                    stats.gen_busy_s += busy
                    for r in results:
                        t = by_key[r.key]
                        stats.new_tokens += len(r.token_ids)
                        nxt = self._after_generation(t, r)
                        if nxt is not None:
                            tools.add(asyncio.ensure_future(self._tool(t, *nxt)))
                        elif not t.done:  # an error turn was injected: the model answers it next
                            ready.append(t)
                else:
                    tools.discard(task)
                    t, latency = task.result()
                    stats.tool_latencies.append(latency)
                    if not t.done:
                        ready.append(t)
            if idle_since is not None and (gens or ready or not tools):
                stats.tool_wait_s += time.perf_counter() - idle_since
                idle_since = None
        stats.wall_s = time.perf_counter() - t_start
        return stats

    def _take(self, ready: deque[Trajectory]) -> list[Trajectory]:
        """The next batch: up to `batch_size` trajectories whose clips fit `max_batch_pixels` together (a lone
        trajectory always goes: its clips are bounded by the tool's frames x pixels per call)."""
        batch, pixels = [], 0
        while ready and len(batch) < self.cfg.batch_size:
            px = video_pixels(ready[0])
            if batch and pixels + px > self.cfg.max_batch_pixels:
                break
            batch.append(ready.popleft())
            pixels += px
        return batch

    async def _timed_generate(self, requests: list[dict]):
        t0 = time.perf_counter()
        results = await self.generate_fn(requests, self.sampling)
        return results, time.perf_counter() - t0

    def _after_generation(self, t: Trajectory, r: GenResult):
        """Append the turn; return (name, arguments) for a tool call to run, or None."""
        append_generation(t, r.token_ids, r.logprobs, r.text)
        may_call = self.tools_enabled and t.turns <= self.cfg.max_turns
        if r.stop_reason == "tool_call" and may_call:
            parsed = parse_turn(r.text)
            t.tool_calls += 1
            if parsed.kind == "tool":
                return parsed.name, parsed.arguments
            self._inject(t, f"Error: {parsed.error}", None)  # malformed call: explicit error turn
            return None
        if r.stop_reason == "answer":
            finish(t, "answer")
        elif r.stop_reason == "tool_call":
            finish(t, "max_turns")
        else:  # eos or length with no answer: end here instead of silently concatenating turns (docs/method.md §7 D2)
            finish(t, "no_answer" if r.stop_reason == "eos" else "length")
        return None

    async def _tool(self, t: Trajectory, name: str, arguments: dict):
        t0 = time.perf_counter()
        meta, frames_ref = await self.tool_fn(name, arguments, t.video_path, t.duration)
        latency = time.perf_counter() - t0
        clip = None
        event = {"name": name, "arguments": arguments, "ok": bool(meta.get("ok")), "error": meta.get("error"),
                 "latency_s": latency}
        if meta.get("ok") and frames_ref is not None:
            clip = VideoRef.from_meta(meta, frames_ref)
            t.tool_ok += 1
            event.update(start=clip.start, end=clip.end, frames=clip.shape[0])
        t.tool_events.append(event)
        self._inject(t, meta["text"], clip)
        return t, latency

    def _inject(self, t: Trajectory, text: str, clip: VideoRef | None) -> None:
        ids = self.codec.encode_tool_turn(text, clip)
        if len(ids) + 1 > remaining_budget(t, self.cfg.max_total_tokens):  # no room left to answer
            finish(t, "length")
            return
        append_tool_turn(t, ids, clip)
