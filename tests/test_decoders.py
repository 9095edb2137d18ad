"""Every decoder behind `tool.decoder` on real mp4s: the same frames and timestamps, frames in the order asked,
the same clean error for each kind of broken file, and `auto` falling back when a decoder cannot run."""

import numpy as np
import pytest

from vital_ray.config import ToolConfig
from vital_ray.tools import decoders
from vital_ray.tools.clip_tool import get_video_clip_frame
from vital_ray.tools.decoders import DECODERS, open_decoder, resolve, unavailable

CFG = ToolConfig(max_frames=8, max_pixels=64 * 784)


def cfg_for(decoder: str, **kw) -> ToolConfig:
    return ToolConfig(**{**CFG.__dict__, "decoder": decoder, **kw})


def runnable(name: str) -> str:
    """Skip (naming why, e.g. torchcodec's missing FFmpeg libraries) when `name` cannot run here."""
    why = unavailable(name)
    if why:
        pytest.skip(f"{name} unavailable: {why}")
    return name


@pytest.fixture(params=DECODERS)
def decoder(request):
    return runnable(request.param)


def test_auto_takes_the_first_decoder_that_runs(monkeypatch):
    first = next(d for d in decoders.AUTO_ORDER if unavailable(d) is None)
    assert resolve("auto") == first
    monkeypatch.setattr(decoders, "unavailable", lambda name: "ImportError: gone" if name != "pyav" else None)
    assert resolve("auto") == "pyav"
    assert resolve("decord") == "pyav"  # a configured decoder that cannot run falls back the same way
    assert resolve("frames") == "frames"


def test_same_frames_and_timestamps_as_pyav(decoder, synthetic, sample_mp4):
    rec = synthetic[0][0]
    for video, s, e, dur in ((rec.video, 20.0, 24.0, rec.duration),  # dense: consecutive grid frames
                             (rec.video, 2.0, 50.0, rec.duration),  # sparse: subsampled over 48 s
                             (sample_mp4, 2.0, 6.0, 10.0)):
        a = get_video_clip_frame(video, s, e, dur, cfg_for("pyav"))
        b = get_video_clip_frame(video, s, e, dur, cfg_for(decoder))
        assert a.ok and b.ok, (a.error, b.error)
        assert b.clip.source == decoder
        assert a.clip.frames.shape == b.clip.frames.shape and a.clip.timestamps == b.clip.timestamps
        assert np.abs(a.clip.frames.astype(int) - b.clip.frames.astype(int)).mean() < 6  # same frames


def test_frames_come_back_in_the_order_asked(decoder, synthetic):
    src = open_decoder(decoder, synthetic[0][0].video, CFG.max_source_pixels, (CFG.min_pixels, CFG.max_pixels))
    times = [40.0, 3.0, 3.0, 59.9, 12.5, 0.0]  # unsorted, a repeat, the last frame
    batch = src.get_frames(times)
    one_by_one = np.stack([src.get_frames([t])[0] for t in times])
    assert batch.shape[0] == len(times)
    assert np.abs(batch.astype(int) - one_by_one.astype(int)).mean() < 2
    assert not np.array_equal(batch[0], batch[1])  # different times, different frames (the clock moves)


def test_every_decoder_gives_the_same_clean_error(broken_videos):
    """Missing, empty, text, truncated, random bytes: one message per case whichever decoder is configured."""
    names = [d for d in DECODERS if unavailable(d) is None]
    for kind, path in broken_videos.items():
        errors = {d: get_video_clip_frame(path, 1.0, 5.0, 60.0, cfg_for(d)).error for d in names}
        assert all(e and e.startswith(f"cannot read video {path}: ") for e in errors.values()), (kind, errors)
        assert len(set(errors.values())) == 1, (kind, errors)


@pytest.fixture(scope="module")
def long_gop_mp4(tmp_path_factory):
    """40 s with a 10 s GOP (and no B-frames): sparse times need decoding from a keyframe far back."""
    import subprocess

    exe = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    path = str(tmp_path_factory.mktemp("gop") / "gop10s.mp4")
    subprocess.run([exe, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "40",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "300", "-keyint_min", "300", "-sc_threshold",
                    "0", "-pix_fmt", "yuv420p", path], check=True, timeout=120)
    return path


def test_same_frames_on_a_long_gop(decoder, long_gop_mp4):
    """Seeks land on keyframes up to 10 s before the wanted frame; the frame returned is still the wanted one."""
    times = [1.0, 7.5, 12.3, 21.0, 33.5, 39.0]
    ref = open_decoder("pyav", long_gop_mp4, CFG.max_source_pixels).get_frames(times).astype(int)
    got = open_decoder(decoder, long_gop_mp4, CFG.max_source_pixels).get_frames(times).astype(int)
    for i in range(len(times)):
        assert np.abs(got[i] - ref[i]).mean() < 2, (decoder, times[i])
    assert np.abs(ref[1] - ref[0]).mean() > 5  # testsrc2 changes over time: a wrong frame would show
