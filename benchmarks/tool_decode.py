"""Clip-tool latency vs the ffmpeg CLI on the same segment (not a test; prints medians and ratios).

    .venv/bin/python benchmarks/tool_decode.py [--duration 600] [--repeats 5]

A 10-minute 854x480 H.264 video (1 s GOP) is generated once (cached). For 8/16/32/64-frame clips from the
middle, we time `get_video_clip_frame` (decord, 1 thread; cold = fresh reader, warm = cached reader) and
`ffmpeg -threads 1 -ss S -to E -i video -vf fps=2,scale=W:H -f rawvideo -` producing the same frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vital_ray.config import ToolConfig  # noqa: E402
from vital_ray.data.synthetic import generate_dataset  # noqa: E402
from vital_ray.tools import video_io  # noqa: E402
from vital_ray.tools.clip_tool import get_video_clip_frame  # noqa: E402


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    import imageio_ffmpeg
    import torch

    torch.set_num_threads(1)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    t0 = time.perf_counter()
    records, _ = generate_dataset(os.path.expanduser("~/.cache/vital_ray/bench_video"), num_videos=1,
                                  duration_s=args.duration, tasks=("tg",), records_per_video=1, seed=11,
                                  size=(854, 480), fps=30)
    video = records[0].video
    print(f"video: {video} ({args.duration:.0f} s, 854x480, 30 fps; ready in {time.perf_counter() - t0:.1f} s)")
    cfg = ToolConfig(max_frames=64)
    rows = []
    print(f"{'frames':>6} {'tool cold ms':>12} {'tool warm ms':>12} {'ffmpeg ms':>10} {'ffmpeg/warm':>11} "
          f"{'ffmpeg/cold':>11} {'tool fps/core':>13} {'ffmpeg fps/core':>15}")
    for n in (8, 16, 32, 64):
        start = args.duration / 2
        end = start + n / cfg.source_fps - 0.01  # n frames on the 2 fps grid
        res = get_video_clip_frame(video, start, end, args.duration, cfg)
        assert res.ok and len(res.clip.frames) == n, (res.error, None if res.clip is None else res.clip.frames.shape)
        h, w = res.clip.frames.shape[1:3]

        def cold():
            video_io._CACHE.clear()
            get_video_clip_frame(video, start, end, args.duration, cfg)

        def warm():
            get_video_clip_frame(video, start, end, args.duration, cfg)

        cmd = [ffmpeg, "-v", "error", "-threads", "1", "-ss", f"{start}", "-to", f"{end}", "-i", video,
               "-vf", f"fps=2,scale={w}:{h}", "-threads", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]

        def ff():
            out = subprocess.run(cmd, capture_output=True, check=True).stdout
            assert len(out) // (w * h * 3) >= n - 1

        tc, tw, tf = (median_time(f, args.repeats) for f in (cold, warm, ff))
        row = {"frames": n, "size": [h, w], "tool_cold_ms": tc * 1e3, "tool_warm_ms": tw * 1e3,
               "ffmpeg_ms": tf * 1e3, "ffmpeg_over_tool_warm": tf / tw, "ffmpeg_over_tool_cold": tf / tc,
               "tool_frames_per_s_per_core": n / tw, "ffmpeg_frames_per_s_per_core": n / tf}
        rows.append(row)
        print(f"{n:>6} {tc * 1e3:>12.1f} {tw * 1e3:>12.1f} {tf * 1e3:>10.1f} {tf / tw:>11.2f} {tf / tc:>11.2f} "
              f"{n / tw:>13.1f} {n / tf:>15.1f}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"tool_decode_{socket.gethostname()}.json")
    with open(path, "w") as f:
        json.dump({"host": socket.gethostname(), "cpu": platform.processor() or platform.machine(),
                   "repeats": args.repeats, "video_s": args.duration, "rows": rows}, f, indent=1)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
