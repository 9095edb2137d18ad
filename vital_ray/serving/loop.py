"""One served request through the training tool loop: global view -> model -> clip tool -> model ...

The same `start_group` + `RolloutScheduler` the RL rollouts use, over injected async functions (Serve deployment
handles in production, plain functions in tests). Nothing the model writes is executed: a tool call is parsed
as JSON and dispatched only to the clip tool by name.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Callable

from vital_ray.config import RolloutConfig, ServeConfig
from vital_ray.data.records import Record
from vital_ray.rollout.engine import GenResult, SamplingParams
from vital_ray.rollout.scheduler import GenerateFn, GlobalViewFn, RolloutScheduler, ToolFn, start_group
from vital_ray.rollout.trajectory import TokenCodec, Trajectory
from vital_ray.serving.errors import RequestError
from vital_ray.serving.request import ChatRequest
from vital_ray.tools.clip_tool import TOOL_SCHEMA

EventFn = Callable[[dict], None]


def loop_config(rollout: RolloutConfig, serve: ServeConfig, req: ChatRequest) -> RolloutConfig:
    """The rollout settings of one request: the server's turn/token budgets, lowered by the client's max_tokens."""
    budget = min(serve.max_tokens, req.max_tokens or serve.max_tokens)
    return dataclasses.replace(rollout, max_turns=serve.max_turns, max_total_tokens=budget, batch_size=1,
                               max_tokens_per_turn=min(rollout.max_tokens_per_turn, budget))


def sampling_for(rollout: RolloutConfig, req: ChatRequest) -> SamplingParams:
    return SamplingParams(temperature=rollout.temperature if req.temperature is None else req.temperature,
                          top_p=rollout.top_p if req.top_p is None else req.top_p,
                          repetition_penalty=rollout.repetition_penalty, seed=req.seed)


def with_prefill(generate: GenerateFn, codec: TokenCodec, prefix: str) -> GenerateFn:
    """The client's final assistant message starts the model's first turn (vLLM's `continue_final_message`): a
    prefix ending in a complete `</tool_call>` is handled like a generated call (parsed, then the clip tool);
    one ending in `</answer>` is the answer; otherwise the model continues the text."""
    ids = codec.encode(prefix)
    pending = [True]

    async def generate_fn(requests: list[dict], sampling: SamplingParams) -> list[GenResult]:
        if not pending:
            return await generate(requests, sampling)
        pending.clear()
        (r,) = requests
        stripped = prefix.rstrip()
        if stripped.endswith("</tool_call>") or stripped.endswith("</answer>"):
            reason = "tool_call" if stripped.endswith("</tool_call>") else "answer"
            return [GenResult(r["key"], ids, [0.0] * len(ids), prefix, reason)]
        cont = {**r, "token_ids": r["token_ids"] + ids, "max_new_tokens": max(1, r["max_new_tokens"] - len(ids))}
        (res,) = await generate([cont], sampling)
        return [GenResult(r["key"], ids + res.token_ids, [0.0] * len(ids) + res.logprobs, prefix + res.text,
                          res.stop_reason, res.stats)]

    return generate_fn


def observed(generate: GenerateFn, call_tool: ToolFn, on_event: EventFn) -> tuple[GenerateFn, ToolFn]:
    """Report each model turn and tool result as it happens (for streaming responses)."""

    async def gen(requests, sampling):
        results = await generate(requests, sampling)
        for res in results:
            on_event({"type": "turn", "text": res.text, "stop_reason": res.stop_reason})
        return results

    async def tool(name, arguments, video, duration):
        meta, frames = await call_tool(name, arguments, video, duration)
        on_event({"type": "tool_call", "name": name, "arguments": arguments, "ok": bool(meta.get("ok")),
                  "error": meta.get("error"), "start": meta.get("start"), "end": meta.get("end")})
        return meta, frames

    return gen, tool


async def run_request(codec: TokenCodec, req: ChatRequest, video_path: str, rollout: RolloutConfig,
                      generate: GenerateFn, call_tool: ToolFn, global_view: GlobalViewFn,
                      on_event: EventFn | None = None) -> Trajectory:
    """Run the tool loop for one request; an unreadable video is a 422."""
    record = Record(id=uuid.uuid4().hex[:12], video=video_path, duration=0.0, text=req.question, solution=None,
                    data_source="serve")
    tools = rollout.max_turns > 0
    group, error = await start_group(codec, global_view, record, 1, [TOOL_SCHEMA] if tools else None)
    if error:
        raise RequestError(422, f"unreadable video: {error}", "invalid_video", "video")
    if req.prefill:
        n = len(codec.encode(req.prefill))
        if n >= rollout.max_total_tokens:
            raise RequestError(400, f"the assistant prefill has {n} tokens; the request's token budget is "
                               f"{rollout.max_total_tokens}", "prefill_too_long", "messages")
        generate = with_prefill(generate, codec, req.prefill)
    if on_event is not None:
        generate, call_tool = observed(generate, call_tool, on_event)
    scheduler = RolloutScheduler(codec, rollout, sampling_for(rollout, req), generate, call_tool, 1,
                                 tools_enabled=tools)
    await scheduler.run(group)
    return group[0]
