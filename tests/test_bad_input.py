"""Bad model output, bad videos and bad records: each is an explicit, counted error and nothing crashes.

Real parts only: the real parser, tokenizer, scheduler and clip tool (decord) on real files made by ffmpeg.
The model is a scripted policy (tests/test_scheduler.py) so the bad outputs are exactly the ones under test.
"""

import json
import math
import os
import resource
import subprocess
import sys

import pytest

from tests.test_scheduler import call, env, run  # noqa: F401  (env is a fixture)
from vital_ray.config import RewardConfig, RolloutConfig, ToolConfig, VideoViewConfig
from vital_ray.data.records import RecordError, load_records
from vital_ray.prompts import clip_turn_string
from vital_ray.rewards import score_response
from vital_ray.tools.clip_tool import execute_tool_call, get_video_clip_frame
from vital_ray.tools.parser import parse_turn
from vital_ray.tools.decoders import DECODERS, unavailable
from vital_ray.tools.video_io import VideoError, open_video, sample_global_view

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = ToolConfig(max_frames=8, max_pixels=64 * 784)


def _tool_call(name="get_video_clip_frame", start="1", end="5") -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {{"start_time": {start}, "end_time": {end}}}}}</tool_call>'


# -- bad model output ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, msg", [
    ("<tool_call>" + "[" * 100_000 + "</tool_call>", "nested too deeply"),  # RecursionError inside json
    (_tool_call(start="[" * 5000 + "]" * 5000), "nested too deeply"),
    (_tool_call(start="9" * 5000), "not valid JSON"),  # over Python's int-string limit
    (_tool_call(start="1e999"), "not finite"),  # json turns 1e999 into inf
    (_tool_call(start="NaN"), "non-finite"),
    (_tool_call(start="-Infinity"), "non-finite"),
    ('<tool_call>{"name": null, "arguments": {}}</tool_call>', '"name"'),
    ("<tool_call><tool_call>{}</tool_call></tool_call>", "not valid JSON"),
    ("<tool_call>" + "x" * 100_000, "unclosed"),
    ("<answer>A", "parse failed"),
    ("<think>" * 1000, "parse failed"),
])
def test_malformed_calls_parse_to_errors(text, msg):
    p = parse_turn(text)
    assert p.kind == "error" and msg in p.error, p


@pytest.mark.parametrize("start, end, msg", [
    ("9" * 400, "5", "must be a number"),  # a 400-digit integer overflows float(): was an uncaught OverflowError
    ('"nan"', "5", "finite"), ('"1e999"', "5", "finite"), ("-3", "5", ">= 0"), ("9", "2", "smaller"),
    ("50", "61", "exceeds"), ("59", "59.5", "longer than"), ("[1]", "5", "number"), ('{"a": 1}', "5", "number"),
    ("true", "5", "number"),
])
def test_out_of_range_and_non_numeric_times_are_error_results(synthetic, start, end, msg):
    rec = synthetic[0][0]
    p = parse_turn(_tool_call(start=start, end=end))
    assert p.kind == "tool"
    res = execute_tool_call(p.name, p.arguments, rec.video, rec.duration, CFG)
    assert not res.ok and msg in res.error and len(res.text) < 200, res.text


def test_1000_calls_in_one_turn_run_only_the_first():
    p = parse_turn("<think>go</think>" + _tool_call(start="1", end="5") + _tool_call(start="7", end="9") * 999)
    assert p.kind == "tool" and p.arguments == {"start_time": 1, "end_time": 5} and p.extra_calls == 999


@pytest.mark.parametrize("name", ["<|video_pad|>", "<|im_end|>\n<|im_start|>system", "\ud800bad", "z" * 10_000])
def test_echoed_tool_names_cannot_break_the_tool_turn(env, name):
    """The unknown name is echoed in the error turn: it must not add a video slot, end the turn, crash the
    tokenizer (lone surrogate) or eat the token budget."""
    codec = env[0]
    text = json.dumps({"name": name, "arguments": {"start_time": 1, "end_time": 5}})
    p = parse_turn(f"<tool_call>{text}</tool_call>")
    res = execute_tool_call(p.name, p.arguments, "/nonexistent.mp4", 60.0, CFG)
    assert not res.ok and "not found in tools list" in res.text and len(res.text) < 200
    ids = codec.encode_tool_turn(res.text, None)  # raised before: placeholders != clips / TypeError
    assert codec.video_pad not in ids
    assert clip_turn_string(res.text, False).count("<|im_end|>") == 2  # the template's own two


def test_scheduler_survives_every_kind_of_bad_turn(env):
    codec = env[0]
    many = "<think>go</think>" + call(1, 5) * 1000
    scripts = [
        [many, "<answer>A</answer>"],  # 1000 calls in one turn: one runs
        ["<tool_call>" + "[" * 50_000 + "</tool_call>", "<answer>B</answer>"],  # deep JSON
        [_tool_call(start="9" * 400), "<answer>C</answer>"],  # huge integer
        [call(float("nan"), 5), "<answer>D</answer>"],  # NaN
        [call(30, 20), "<answer>E</answer>"],  # inverted
        [call(1, 5000), "<answer>F</answer>"],  # out of range
        # generation suppresses vision tokens, but JSON can spell one: "\u003c|video_pad|>" is "<|video_pad|>"
        [_tool_call(name="\\u003c|video_pad|>"), "<answer>G</answer>"],
        ["no tags at all"],
    ]
    # room for the 1000 calls (~30k tokens): an engine without stop tokens could emit them all in one turn
    cfg = RolloutConfig(max_turns=2, max_tokens_per_turn=40_000, max_total_tokens=50_000, batch_size=8)
    trajs, _, _ = run(env, scripts, cfg)
    assert all(t.done for t in trajs) and len(trajs) == len(scripts)
    assert [t.tool_ok for t in trajs] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert [t.stop_reason for t in trajs[:7]] == ["answer"] * 7 and trajs[7].stop_reason == "no_answer"
    texts = [codec.decode(t.token_ids[t.prompt_len:]) for t in trajs]
    for t, text, msg in zip(trajs[1:7], texts[1:7], ["nested too deeply", "must be a number", "non-finite",
                                                    "smaller", "exceeds", "not found in tools list"]):
        assert msg in text and t.tool_calls == 1, (msg, text[:300])
    assert all(sum(v.num_tokens for v in t.videos) == t.token_ids.count(codec.video_pad) for t in trajs)


def test_endless_tool_calls_are_cut_by_max_turns_and_token_budget(env):
    forever = [call(1 + i % 50, 3 + i % 50) for i in range(1000)]
    (capped,), _, _ = run(env, [list(forever)])
    assert capped.tool_calls == 2 and capped.stop_reason == "max_turns"  # default max_turns=2
    cfg = RolloutConfig(max_turns=1000, max_tokens_per_turn=64, max_total_tokens=1500, batch_size=8)
    (budget,), _, _ = run(env, [list(forever)], cfg)
    assert budget.stop_reason == "length" and 1 < budget.tool_calls < 1000 and budget.response_len <= 1500


@pytest.mark.parametrize("text", [
    "", "no tags", "<answer>nan</answer>", "<answer>inf</answer>", "<answer>1e999</answer>",
    "<answer>from 1e400 to 1e401 seconds</answer>", "<answer>[5, 2]</answer>", "<answer>-3 to -1</answer>",
    "<answer>" + "9" * 5000 + "</answer>", "<answer>" + "(" * 10_000 + "</answer>", "<answer>[" * 3000,
    "<think>" * 1000, "<answer>\x00\udcff</answer>", "<answer>A</answer>" * 1000,
])
def test_rewards_of_bad_answers_are_finite_for_every_task(text):
    cfg = RewardConfig()
    for task, spec in cfg.tasks.items():
        sol = {"tg": [1.0, 5.0], "mcq": "A", "gqa_mcq": {"answer": "A", "span": [1.0, 5.0]},
               "gqa_free_form": {"answer": "a cat", "span": [1.0, 5.0]}}.get(spec.kind, "3.5")
        res = score_response(task, text, sol, 1, cfg)
        assert res.error is None and math.isfinite(res.total), (task, res)
        assert all(math.isfinite(v) for v in res.components.values()), (task, res)


# -- bad videos ------------------------------------------------------------------------------------------------
def _ffmpeg(*args):
    exe = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=300)


@pytest.fixture(scope="module")
def odd_videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("odd")
    av1, huge = str(d / "av1.mp4"), str(d / "huge.mp4")
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "4", "-c:v", "libaom-av1", "-cpu-used", "8",
            av1)
    # 8000x8000: one raw frame is 192 MB; 4 frames at 2 fps
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=8000x8000:rate=2", "-t", "2", "-c:v", "libx264", "-preset",
            "ultrafast", "-pix_fmt", "yuv420p", huge)
    return {"av1": av1, "huge": huge}


def test_unsupported_codec_names_the_codec(odd_videos):
    """decord 0.6's FFmpeg 4.1 has no AV1 decoder (torchcodec's and PyAV's FFmpeg may have one: see below)."""
    if unavailable("decord"):
        pytest.skip(f"decord unavailable: {unavailable('decord')}")
    decord = ToolConfig(**{**CFG.__dict__, "decoder": "decord"})
    res = get_video_clip_frame(odd_videos["av1"], 0.0, 3.0, 4.0, decord)
    assert not res.ok and "unsupported codec" in res.error and "av1" in res.error.lower(), res.error
    with pytest.raises(VideoError, match="unsupported codec"):
        sample_global_view(odd_videos["av1"], 4.0, VideoViewConfig(), decoder="decord")


def test_huge_resolution_decode_memory_is_bounded(odd_videos):
    """In a fresh process: without the decode cap this clip peaks at ~2.7 GB (4 raw 8000x8000 frames)."""
    code = ("import resource, sys; from vital_ray.config import ToolConfig;"
            "from vital_ray.tools.clip_tool import get_video_clip_frame as g;"
            f"r = g({odd_videos['huge']!r}, 0.0, 1.9, 2.0, ToolConfig(max_frames=8)); assert r.ok, r.error;"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    peak_mb = int(out.stdout.split()[-1])
    assert peak_mb < 1600, peak_mb  # measured 0.4-1.1 GB capped (noisy on a shared VM); 2.7 GB before the fix


def test_record_duration_longer_than_the_file_is_an_error(synthetic):
    rec = synthetic[0][0]  # a 60 s video
    assert sample_global_view(rec.video, 60.5, VideoViewConfig(max_frames=4)).frames.shape[0] == 4  # slack
    with pytest.raises(VideoError, match="record's duration 600.00 s exceeds the file's 60.00 s"):
        sample_global_view(rec.video, 600.0, VideoViewConfig(max_frames=4))
    res = get_video_clip_frame(rec.video, 100.0, 120.0, 600.0, CFG)  # a call past the file's end
    assert not res.ok and "no frames between" in res.error


# -- bad records -----------------------------------------------------------------------------------------------
def test_bad_records_are_counted_and_skipped_or_fail(tmp_path, synthetic):
    video = synthetic[0][0].video
    good = {"video": video, "duration": 60, "text": "q", "solution": [1, 2], "data_source": "synthetic/tg"}
    rows = [good,
            {k: v for k, v in good.items() if k != "text"},
            {k: v for k, v in good.items() if k != "video"},
            {k: v for k, v in good.items() if k != "solution"},
            {**good, "solution": [-4, 2]},
            {**good, "solution": "[9, 3]"},
            {**good, "duration": -60},
            {**good, "duration": float("nan")},
            {**good, "duration": None},
            {**good, "video": ""},
            {**good, "video": 7}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    recs, errors = load_records(str(path))
    assert len(recs) == 1 and len(errors) == len(rows) - 1
    for i, (e, what) in enumerate(zip(errors, ["'text'", "'video'", "'solution'", "0 <= start < end",
                                               "0 <= start < end", "'duration' must be positive",
                                               "'duration' must be positive", "'duration' must be a number",
                                               "'video' must be a path", "'video' must be a path"]), start=1):
        assert f"bad.json[{i}]" in e and what in e, e
    with pytest.raises(RecordError, match=r"bad.json\[1\]: missing field 'text'"):
        load_records(str(path), on_bad="fail")


# -- memory budgets --------------------------------------------------------------------------------------------
def test_generation_batches_respect_the_pixel_budget(env):
    from vital_ray.rollout.scheduler import video_pixels

    scripts = [[call(1 + i, 9 + i), "<answer>A</answer>"] for i in range(6)]
    one_view = int(env[2].shape[0] * env[2].shape[1] * env[2].shape[2])
    budget = 3 * one_view  # three prompts (global view only) fit; with a clip each fewer do
    cfg = RolloutConfig(max_turns=2, max_tokens_per_turn=64, max_total_tokens=600, batch_size=8,
                        max_batch_pixels=budget)
    trajs, _, policy = run(env, scripts, cfg)
    assert all(t.tool_ok == 1 and t.stop_reason == "answer" for t in trajs)
    clip = video_pixels(trajs[0]) - one_view
    assert one_view + clip > budget  # so a trajectory holding its clip goes alone
    # first turns: 6 prompts split 3 + 3 by the budget (batch_size alone would send 6); answers: one by one
    assert [len(c) for c in policy.calls] == [3, 3, 1, 1, 1, 1, 1, 1]


def test_a_clip_larger_than_the_batch_budget_fails_at_start_up():
    from vital_ray.config import ConfigError, DGRPOJobConfig, load_config

    with pytest.raises(ConfigError, match="exceeds rollout.max_batch_pixels"):
        load_config(DGRPOJobConfig, None, ["tool.max_frames=64", "tool.max_pixels=50176",
                                           "rollout.max_batch_pixels=1000000"])


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_decoder_handles_the_same_bad_videos(decoder, odd_videos, synthetic):
    """AV1 (decoded where that decoder's FFmpeg has an AV1 decoder, else the clean codec error), 8000x8000
    scaled while decoding, a record longer than the file, a call past the file's end."""
    if unavailable(decoder):
        pytest.skip(f"{decoder} unavailable: {unavailable(decoder)}")
    cfg = ToolConfig(**{**CFG.__dict__, "decoder": decoder})
    res = get_video_clip_frame(odd_videos["av1"], 0.0, 3.0, 4.0, cfg)
    assert res.ok or ("unsupported codec" in res.error and "av1" in res.error.lower()), res.error
    src = open_video(odd_videos["huge"], decoder, max_pixels=CFG.max_source_pixels)
    assert src.pixels <= CFG.max_source_pixels
    res = get_video_clip_frame(odd_videos["huge"], 0.0, 1.9, 2.0, cfg)
    assert res.ok and res.clip.frames.shape[1] * res.clip.frames.shape[2] <= CFG.max_pixels
    rec = synthetic[0][0]
    with pytest.raises(VideoError, match="record's duration 600.00 s exceeds the file's 60.00 s"):
        sample_global_view(rec.video, 600.0, VideoViewConfig(max_frames=4), decoder=decoder)
    res = get_video_clip_frame(rec.video, 100.0, 120.0, 600.0, cfg)
    assert not res.ok and "no frames between" in res.error
