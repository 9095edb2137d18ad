"""Rollout scheduling rules with a *scripted policy* (stands in for the model so the texts are known) over the
real tokenizer, the real clip tool on real mp4s, and the real scheduler."""

import asyncio
import json

import pytest

from vital_ray.config import RolloutConfig, ToolConfig
from vital_ray.models import load_model_bundle
from vital_ray.rollout.engine import GenResult, SamplingParams
from vital_ray.rollout.scheduler import RolloutScheduler
from vital_ray.rollout.trajectory import TokenCodec, VideoRef, new_trajectory
from vital_ray.tools.clip_tool import TOOL_SCHEMA, execute_tool_call
from vital_ray.tools.video_io import sample_global_view
from vital_ray.config import VideoViewConfig


def call(s, e, name="get_video_clip_frame"):
    return "<think>look</think><tool_call>" + json.dumps({"name": name, "arguments":
                                                           {"start_time": s, "end_time": e}}) + "</tool_call>"


class ScriptedPolicy:
    """Returns scripted turns per trajectory; stop reasons derived from the text like the engines do."""

    def __init__(self, codec, scripts, delay=0.0):
        self.codec, self.scripts, self.delay, self.calls = codec, scripts, delay, []

    async def __call__(self, requests, sampling):
        self.calls.append([r["key"] for r in requests])
        await asyncio.sleep(self.delay)
        out = []
        for r in requests:
            turn = self.scripts[r["key"]].pop(0)
            ids = self.codec.encode(turn)[: r["max_new_tokens"]]
            text = self.codec.decode(ids)
            reason = ("tool_call" if text.endswith("</tool_call>") else "answer" if text.endswith("</answer>")
                      else "length" if len(ids) == r["max_new_tokens"] else "eos")
            out.append(GenResult(r["key"], ids, [-0.5] * len(ids), text, reason))
        return out


@pytest.fixture(scope="module")
def env(tiny_model_path, synthetic):
    codec = TokenCodec(load_model_bundle(tiny_model_path).tokenizer)
    rec = synthetic[0][0]
    view = sample_global_view(rec.video, rec.duration, VideoViewConfig(max_frames=4))
    return codec, rec, VideoRef(view.frames, view.frames.shape, view.fps, 0, rec.duration)


def run(env, scripts, cfg=None, tool_delay=0.0, gen_delay=0.0):
    codec, rec, view = env
    cfg = cfg or RolloutConfig(max_turns=2, max_tokens_per_turn=64, max_total_tokens=600, batch_size=8)
    trajs = [new_trajectory(codec, rec, view, "u", i, [TOOL_SCHEMA]) for i in range(len(scripts))]
    keyed = {t.sample_id: list(s) for t, s in zip(trajs, scripts)}
    policy = ScriptedPolicy(codec, keyed, gen_delay)

    async def tool(name, args, video, duration):
        await asyncio.sleep(tool_delay)
        res = await asyncio.to_thread(execute_tool_call, name, args, video, duration, ToolConfig(max_frames=4))
        meta = {"ok": res.ok, "text": res.text, "error": res.error}
        if res.ok:
            meta.update(shape=res.clip.frames.shape, fps=res.clip.fps, start=res.clip.start, end=res.clip.end)
        return meta, res.clip.frames if res.ok else None

    sched = RolloutScheduler(codec, cfg, SamplingParams(), policy, tool, num_gen_workers=1)
    stats = asyncio.run(sched.run(trajs))
    return trajs, stats, policy


def test_tool_then_answer(env):
    (t,), stats, _ = run(env, [[call(10, 14), "<think>ok</think><answer>A</answer>"]])
    assert t.stop_reason == "answer" and t.tool_calls == 1 and t.tool_ok == 1 and len(t.videos) == 2
    assert t.response_text.endswith("<answer>A</answer>") and "Video clip" not in t.response_text
    assert sum(t.loss_mask) == t.gen_tokens and stats.tool_latencies


def test_max_turns_stops_further_calls(env):
    (t,), _, _ = run(env, [[call(1, 3), call(4, 6), call(7, 9)]])
    assert t.tool_calls == 2 and t.stop_reason == "max_turns" and t.turns == 3


def test_malformed_and_failing_calls_become_error_turns(env):
    codec = env[0]
    scripts = [["<tool_call>{oops}</tool_call>", "<answer>A</answer>"],
               [call(30, 20), "<answer>B</answer>"],
               [call(1, 3, name="zoom"), "<answer>C</answer>"]]
    trajs, _, _ = run(env, scripts)
    texts = [codec.decode(t.token_ids[t.prompt_len:]) for t in trajs]
    assert "Error: tool call is not valid JSON" in texts[0]
    assert "must be smaller than end_time" in texts[1]
    assert "not found in tools list" in texts[2]
    assert all(t.stop_reason == "answer" and t.tool_calls == 1 and t.tool_ok == 0 for t in trajs)


def test_no_tags_ends_episode_and_budget_is_hard(env):
    cfg = RolloutConfig(max_turns=2, max_tokens_per_turn=64, max_total_tokens=40, batch_size=8)
    long_call = "<think>" + "x " * 30 + "</think>" + call(1, 5)
    trajs, _, _ = run(env, [["just rambling"], [long_call, "<answer>A</answer>"]], cfg)
    assert trajs[0].stop_reason == "no_answer"
    assert trajs[1].response_len <= 40 and trajs[1].stop_reason == "length"


def test_other_trajectories_generate_while_one_waits_for_a_tool(env):
    scripts = [[call(10, 14), "<answer>A</answer>"], ["<answer>B</answer>"]]
    cfg = RolloutConfig(max_turns=2, max_tokens_per_turn=64, max_total_tokens=600, batch_size=1)
    trajs, stats, policy = run(env, scripts, cfg, tool_delay=0.5, gen_delay=0.05)
    # with batch_size 1, trajectory 2's generation is dispatched while trajectory 1's tool call is in flight
    assert [len(c) for c in policy.calls] == [1, 1, 1]
    assert policy.calls[1] == [trajs[1].sample_id] and policy.calls[2] == [trajs[0].sample_id]
    assert stats.tool_wait_s > 0 and len(stats.tool_latencies) == 1
