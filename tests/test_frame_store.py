"""The frame store on real mp4s and real processes: what it serves, atomic commits under concurrent writers and
crashes, LRU eviction by bytes, invalidation when the video changes, broken videos never stored."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from vital_ray.config import ToolConfig, VideoViewConfig
from vital_ray.tools.clip_tool import get_video_clip_frame
from vital_ray.tools.decoders.base import VideoError
from vital_ray.tools.frame_store import FrameStore, GridSpec, store_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = GridSpec(fps=2.0, min_pixels=4 * 784, max_pixels=64 * 784)


@pytest.fixture
def video(synthetic, tmp_path):
    """A private copy of a 60 s synthetic mp4 (tests change its mtime and size)."""
    path = tmp_path / "v.mp4"
    shutil.copy(synthetic[0][0].video, path)
    return str(path)


def entry_bytes(store) -> int:
    return store.entries()[0][1]


def test_fill_then_hit_serves_the_decoded_grid(video, tmp_path):
    store = FrameStore(str(tmp_path / "store"), 2**30, SPEC)
    assert store.get(video) is None and store.misses == 1
    assert store.fill(video) == "filled" and store.fill(video) == "present"
    src = store.get(video)
    assert store.hits == 1 and src.name == "store" and src.num_frames == 120 and src.duration == pytest.approx(60)
    assert isinstance(src.frames, np.memmap)  # read through mmap, not loaded
    cfg = ToolConfig(max_frames=64)
    decoded = get_video_clip_frame(video, 20.0, 31.0, 60.0, cfg)
    stored = get_video_clip_frame(video, 20.0, 31.0, 60.0, ToolConfig(max_frames=64, store_dir=store.root))
    assert decoded.clip.source != "store" and stored.clip.source == "store"
    assert stored.clip.timestamps == decoded.clip.timestamps
    assert np.abs(stored.clip.frames.astype(int) - decoded.clip.frames.astype(int)).mean() < 1  # same frames


def test_clip_tool_fills_on_a_miss_then_reads_the_store(video, tmp_path):
    cfg = ToolConfig(max_frames=8, store_dir=str(tmp_path / "store"))
    first = get_video_clip_frame(video, 5.0, 9.0, 60.0, cfg)
    assert first.ok and first.clip.source != "store"
    store = store_for(cfg)
    store.wait()  # the background fill the miss started
    second = get_video_clip_frame(video, 5.0, 9.0, 60.0, cfg)
    assert second.ok and second.clip.source == "store" and (store.hits, store.misses, store.fills) == (1, 1, 1)
    from actors.tools import run_global_view

    meta, frames = run_global_view(video, 60.0, VideoViewConfig(max_frames=4), cfg)  # honours the store too
    assert meta["ok"] and meta["source"] == "store" and frames.shape[0] == 4 and store.hits == 2


def _writer_code(root: str, video: str, go: str, crash_at_replace: int = 0) -> str:
    """A child process: wait for `go`, fill; with `crash_at_replace`=k, SIGKILL itself at its k-th os.replace
    (1: the frames are written but not committed, 2: frames in place, metadata not)."""
    return f"""
import os, signal, sys, time
sys.path.insert(0, {ROOT!r})
from vital_ray.tools import frame_store as fs
n = [0]
real = os.replace
def replace(a, b):
    n[0] += 1
    if n[0] == {crash_at_replace}:
        os.kill(os.getpid(), signal.SIGKILL)
    real(a, b)
fs.os.replace = replace
store = fs.FrameStore({root!r}, 2**30, fs.GridSpec(2.0, {SPEC.min_pixels}, {SPEC.max_pixels}))
while not os.path.exists({go!r}):
    time.sleep(0.01)
print(store.fill({video!r}))
"""


def test_concurrent_writers_in_processes_decode_once(video, tmp_path):
    root, go = str(tmp_path / "store"), str(tmp_path / "go")
    procs = [subprocess.Popen([sys.executable, "-c", _writer_code(root, video, go)], stdout=subprocess.PIPE,
                              text=True) for _ in range(3)]
    time.sleep(0.5)
    open(go, "w").close()
    outs = [p.communicate(timeout=120)[0].split()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(outs) == ["filled", "present", "present"]  # the lock holder decoded; the others found it
    store = FrameStore(root, 2**30, SPEC)
    assert store.get(video).num_frames == 120 and len(store.entries()) == 1
    assert not [f for f in os.listdir(root) if ".tmp" in f]


@pytest.mark.parametrize("crash_at_replace", [1, 2])
def test_a_writer_killed_mid_write_leaves_nothing_readable(video, tmp_path, crash_at_replace):
    root, go = str(tmp_path / "store"), str(tmp_path / "go")
    open(go, "w").close()
    p = subprocess.run([sys.executable, "-c", _writer_code(root, video, go, crash_at_replace)], timeout=120)
    assert p.returncode == -9  # SIGKILL, mid-write
    store = FrameStore(root, 2**30, SPEC)
    assert store.get(video) is None and store.entries() == []
    assert store.fill(video) == "filled"  # the dead writer's lock died with it
    assert store.get(video).num_frames == 120


def test_lru_eviction_by_bytes(synthetic, tmp_path):
    videos = []
    for name in "abc":
        videos.append(str(tmp_path / f"{name}.mp4"))
        shutil.copy(synthetic[0][0].video, videos[-1])
    store = FrameStore(str(tmp_path / "store"), 2**40, SPEC)
    store.fill(videos[0])
    one = entry_bytes(store)
    store.max_bytes = int(2.5 * one)
    store.fill(videos[1])
    assert store.get(videos[0]) is not None  # a is now more recently read than b
    store.fill(videos[2])
    assert store.get(videos[1]) is None and store.get(videos[0]) is not None and store.get(videos[2]) is not None
    assert store.size_bytes() <= store.max_bytes and len(store.entries()) == 2


def test_a_changed_video_is_a_miss_and_its_old_entry_goes(video, tmp_path):
    store = FrameStore(str(tmp_path / "store"), 2**30, SPEC)
    store.fill(video)
    st = os.stat(video)
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # mtime changed
    assert store.get(video) is None
    store.fill(video)
    assert len(store.entries()) == 1 and store.get(video) is not None
    with open(video, "ab") as f:  # size changed
        f.write(b"\0" * 16)
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same mtime as the stored entry's
    assert store.get(video) is None


def test_a_broken_video_is_never_stored(broken_videos, tmp_path):
    store = FrameStore(str(tmp_path / "store"), 2**30, SPEC)
    for kind, path in broken_videos.items():
        with pytest.raises(VideoError):
            store.fill(path)
        cfg = ToolConfig(store_dir=store.root)
        assert not get_video_clip_frame(path, 1.0, 5.0, 60.0, cfg).ok, kind
    store_for(ToolConfig(store_dir=store.root)).wait()
    assert store.entries() == [] and not [f for f in os.listdir(store.root) if f.endswith((".npy", ".json"))]


def test_entry_metadata_names_the_decoder_and_shape(video, tmp_path):
    store = FrameStore(str(tmp_path / "store"), 2**30, SPEC)
    store.fill(video)
    meta = json.load(open(os.path.join(store.root, store.entries()[0][2] + ".json")))
    assert meta["shape"][0] == 120 and meta["shape"][3] == 3 and meta["decoder"] in ("torchcodec", "decord", "pyav")
    assert entry_bytes(store) >= 120 * meta["shape"][1] * meta["shape"][2] * 3


def test_prepare_frames_fills_the_store_with_one_task_per_video(ray_local, tmp_path):
    from pipelines.prepare_frames import prepare
    from vital_ray.config import DGRPOJobConfig, load_config

    cfg = load_config(DGRPOJobConfig, None, [f"data.synthetic_dir={tmp_path / 'synth'}", "data.num_videos=2",
                                             "data.video_duration_s=20", f"tool.store_dir={tmp_path / 'store'}"])
    first = prepare(cfg)
    assert (first["videos"], first["filled"], first["present"], first["failed"]) == (2, 2, 0, {})
    assert len(FrameStore(cfg.tool.store_dir, 2**30).entries()) == 2 and first["store_gb"] > 0
    again = prepare(cfg)
    assert (again["filled"], again["present"]) == (0, 2)
