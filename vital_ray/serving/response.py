"""OpenAI-compatible response bodies from a finished trajectory.

`message.content` is the `<answer>` (or, with no answer, the last turn without its tags),
`message.reasoning_content` the `<think>` blocks (vLLM's field for reasoning), and `vital` what the loop did:
every tool call made with the clip it returned, each model turn's raw text, and why the loop stopped.
"""

from __future__ import annotations

import re
import time

from vital_ray.rollout.trajectory import Trajectory
from vital_ray.tools.parser import extract_answer

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_MARKUP = re.compile(r"<tool_call>.*?</tool_call>|</?(think|answer|tool_call)>", re.DOTALL)
_FINISH = {"answer": "stop", "length": "length"}


def answer_and_reasoning(traj: Trajectory) -> tuple[str, str]:
    text = traj.response_text
    answer = extract_answer(text)
    if answer is None:
        answer = _MARKUP.sub("", traj.gen_texts[-1] if traj.gen_texts else "").strip()
    return answer, "\n".join(s.strip() for s in _THINK.findall(text))


def tool_calls_made(traj: Trajectory) -> list[dict]:
    keys = ("name", "arguments", "ok", "error", "start", "end", "frames", "latency_s")
    return [{k: e.get(k) for k in keys} for e in traj.tool_events]


def vital_summary(traj: Trajectory) -> dict:
    return {"stop_reason": traj.stop_reason, "turns": traj.turns, "tool_calls": tool_calls_made(traj),
            "turn_texts": list(traj.gen_texts), "duration_s": traj.duration}


def usage(traj: Trajectory) -> dict:
    completion = traj.gen_tokens + traj.tool_tokens
    return {"prompt_tokens": traj.prompt_len, "completion_tokens": completion,
            "total_tokens": traj.prompt_len + completion}


def completion_body(traj: Trajectory, model: str, request_id: str) -> dict:
    answer, reasoning = answer_and_reasoning(traj)
    return {
        "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": _FINISH.get(traj.stop_reason, "stop"),
                     "message": {"role": "assistant", "content": answer, "reasoning_content": reasoning}}],
        "usage": usage(traj), "vital": vital_summary(traj),
    }


def chunk_body(request_id: str, model: str, delta: dict, finish_reason: str | None = None, **extra) -> dict:
    return {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}


def final_chunks(traj: Trajectory, model: str, request_id: str) -> list[dict]:
    """The end of a stream: the answer and reasoning, then finish_reason with usage and the loop summary."""
    answer, reasoning = answer_and_reasoning(traj)
    return [chunk_body(request_id, model, {"content": answer, "reasoning_content": reasoning}),
            chunk_body(request_id, model, {}, _FINISH.get(traj.stop_reason, "stop"), usage=usage(traj),
                       vital=vital_summary(traj))]
