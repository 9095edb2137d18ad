"""The clip tool on real mp4 files: semantics, validation, frame-dir backend, broken videos."""

import math
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from vital_ray.config import ToolConfig, VideoViewConfig
from vital_ray.tools.clip_tool import execute_tool_call, get_video_clip_frame
from vital_ray.tools.video_io import open_video, sample_global_view, smart_resize

CFG = ToolConfig(max_frames=8, max_pixels=64 * 784)


def _rec(synthetic, source):
    return next(r for r in synthetic[0] if r.data_source == source)


def test_clip_semantics_on_synthetic_event(synthetic):
    rec = _rec(synthetic, "synthetic/tg")
    s, e = rec.solution
    res = get_video_clip_frame(rec.video, s, e, rec.duration, ToolConfig())
    assert res.ok, res.error
    n_slice = min(math.floor(e * 2), int(rec.duration * 2) - 1) - math.ceil(s * 2) + 1
    assert len(res.clip.frames) == n_slice + (n_slice % 2)  # 2 fps grid, padded to even
    assert res.clip.frames.dtype == np.uint8 and res.clip.frames.shape[0] % 2 == 0
    h, w = res.clip.frames.shape[1:3]
    assert h % 28 == 0 and w % 28 == 0 and 4 * 784 <= h * w <= 64 * 784
    assert res.clip.timestamps[1] - res.clip.timestamps[0] == pytest.approx(0.5)
    assert res.text == f"Video clip from {s:.2f} to {e:.2f} seconds."
    # the event's colour is on screen inside the window (the synthetic ground truth is right)
    colour = {"red": 0, "green": 1, "blue": 2, "yellow": 0, "magenta": 0, "cyan": 1}[rec.extra["event"]["colour"]]
    mid = res.clip.frames[len(res.clip.frames) // 2].astype(int)
    others = [c for c in range(3) if c != colour]
    assert ((mid[..., colour] > 180) & (mid[..., others].min(-1) < 120)).sum() > 20


def test_subsampling_to_max_frames_sets_effective_fps(synthetic):
    rec = synthetic[0][0]
    res = get_video_clip_frame(rec.video, 10.0, 50.0, rec.duration, CFG)
    assert res.ok and len(res.clip.frames) == 8
    assert res.clip.fps == pytest.approx(8 / 81 * 2)  # 81 grid frames in [10, 50] kept 8
    assert res.clip.timestamps[-1] == pytest.approx(10.0 + 7 / res.clip.fps)


def test_timestamps_are_burned_in_red(synthetic):
    rec = synthetic[0][0]
    stamped = get_video_clip_frame(rec.video, 10.0, 12.0, rec.duration, CFG).clip.frames[0].astype(int)
    plain = get_video_clip_frame(rec.video, 10.0, 12.0, rec.duration,
                                 ToolConfig(max_frames=8, max_pixels=64 * 784, draw_timestamps=False)).clip.frames[0]
    corner = (slice(-30, None), slice(-90, None))
    red = (stamped[corner][..., 0] > 200) & (stamped[corner][..., 1] < 60)
    assert red.sum() > 30 and not np.array_equal(stamped, plain)


@pytest.mark.parametrize("start, end, msg", [
    (-1, 5, ">= 0"), (5, 5, "smaller"), (8, 3, "smaller"), (10, 10.5, "longer than"), (50, 61, "exceeds"),
    ("abc", 5, "number"), (float("nan"), 5, "finite"), (1, float("inf"), "finite"), (True, 5, "number"),
])
def test_validation_errors_are_results(synthetic, start, end, msg):
    rec = synthetic[0][0]
    res = get_video_clip_frame(rec.video, start, end, rec.duration, CFG)
    assert not res.ok and msg in res.error and res.text.startswith("Error: get_video_clip_frame")


def test_bad_tool_calls(synthetic):
    rec = synthetic[0][0]
    assert "not found in tools list" in execute_tool_call("zoom", {}, rec.video, 60, CFG).text
    assert "missing" in execute_tool_call("get_video_clip_frame", {"start_time": 1}, rec.video, 60, CFG).error
    assert "unexpected" in execute_tool_call("get_video_clip_frame", {"start_time": 1, "end_time": 3, "x": 1},
                                             rec.video, 60, CFG).error
    ok = execute_tool_call("get_video_clip_frame", {"start_time": "1.5", "end_time": 4}, rec.video, 60, CFG)
    assert ok.ok


def test_frame_dir_backend_matches_decord(synthetic, tmp_path):
    rec = synthetic[0][0]
    src = open_video(rec.video)
    video = tmp_path / "clip.mp4"
    frame_dir = tmp_path / "clip"
    frame_dir.mkdir()
    for k in range(int(src.duration * 2)):  # VITAL's layout: <stem>/<stem>_<n>.jpg at 2 fps
        Image.fromarray(src.get_frames([k / 2])[0]).save(frame_dir / f"clip_{k + 1:06d}.jpg", quality=95)
    a = get_video_clip_frame(rec.video, 20.0, 24.0, rec.duration, CFG)
    b = get_video_clip_frame(str(video), 20.0, 24.0, rec.duration, ToolConfig(**{**CFG.__dict__, "decoder": "frames"}))
    assert a.ok and b.ok and a.clip.frames.shape == b.clip.frames.shape
    assert np.abs(a.clip.frames.astype(int) - b.clip.frames.astype(int)).mean() < 6  # JPEG noise only


def test_real_third_party_mp4(sample_mp4):
    src = open_video(sample_mp4)
    assert src.num_frames == 250 and src.fps == pytest.approx(25, abs=1)
    res = get_video_clip_frame(sample_mp4, 2.0, 6.0, src.duration, CFG)
    assert res.ok and len(res.clip.frames) == 8
    assert smart_resize(272, 640, 28, 4 * 784, 64 * 784) == tuple(res.clip.frames.shape[1:3])
    view = sample_global_view(sample_mp4, src.duration, VideoViewConfig(max_frames=4))
    assert len(view.frames) == 4 and view.fps == pytest.approx(4 / src.duration)


def test_broken_videos_give_clean_errors(broken_videos):
    for kind, path in broken_videos.items():
        res = get_video_clip_frame(path, 1.0, 5.0, 60.0, CFG)
        assert not res.ok, kind
        assert path in res.error or "cannot read" in res.error, (kind, res.error)


def test_corrupted_middle_does_not_crash(synthetic, tmp_path):
    good = synthetic[0][0].video
    bad = tmp_path / "corrupt.mp4"
    shutil.copy(good, bad)
    data = bytearray(bad.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 20000] = os.urandom(20000)
    bad.write_bytes(bytes(data))
    res = get_video_clip_frame(str(bad), 25.0, 35.0, 60.0, CFG)
    assert res.ok or "cannot read" in res.error  # decoded with artefacts, or a clean error: never a crash
