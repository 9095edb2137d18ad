"""Clip-tool latency per decoder against the ffmpeg CLI on the same segment, and from the frame store (not a test).

    .venv/bin/python benchmarks/tool_decode.py [--duration 600] [--repeats 3] [--sizes 8,16,32,64]

Two 854x480 30 fps H.264 videos (testsrc2, 1 s and 10 s GOP) are generated once (cached). For each decoder that
runs here, clip size n and span kind (dense: n grid frames over n/2 s; sparse: n frames over 300 s), we time
`get_video_clip_frame` cold (reader opened inside the call), warm (cached reader) and from the frame store, and
`ffmpeg -threads 1 -ss S -to E -i video -vf fps=F,scale=W:H -f rawvideo -` producing the same frames. One
thread everywhere. The last line is `RESULT {json}`; the full table goes to results/tool_decode_<host>.json.
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
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vital_ray.config import ToolConfig  # noqa: E402
from vital_ray.tools import video_io  # noqa: E402
from vital_ray.tools.clip_tool import get_video_clip_frame  # noqa: E402
from vital_ray.tools.decoders import DECODERS, resolve, unavailable  # noqa: E402
from vital_ray.tools.frame_store import store_for  # noqa: E402

SPARSE_SPAN_S = 300.0
STORE_CALLS = 40  # 64-frame store reads timed for p50 / p99


def make_video(ffmpeg: str, duration: float, gop_s: int) -> str:
    d = os.path.expanduser("~/.cache/vital_ray/bench_video")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"testsrc2_854x480_{duration:.0f}s_gop{gop_s}s.mp4")
    if not os.path.exists(path):
        tmp = path + ".tmp.mp4"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=854x480:rate=30", "-t",
                        f"{duration}", "-c:v", "libx264", "-preset", "ultrafast", "-g", str(30 * gop_s),
                        "-keyint_min", str(30 * gop_s), "-sc_threshold", "0", "-pix_fmt", "yuv420p", tmp],
                       check=True)
        os.replace(tmp, path)
    return path


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def segment(kind: str, n: int, duration: float) -> tuple[float, float, float]:
    """(start, end, ffmpeg fps) of an n-frame clip."""
    if kind == "dense":
        start = duration / 2
        return start, start + n / 2 - 0.01, 2.0
    start = (duration - SPARSE_SPAN_S) / 2
    return start, start + SPARSE_SPAN_S, n / SPARSE_SPAN_S


def bench_cell(ffmpeg, video, gop, kind, n, duration, decoders, store_dir, repeats) -> list[dict]:
    start, end, fps = segment(kind, n, duration)
    rows, size = [], None
    for dec in decoders:
        cfg = ToolConfig(max_frames=n, decoder=dec)
        res = get_video_clip_frame(video, start, end, duration, cfg)
        assert res.ok and len(res.clip.frames) == n and res.clip.source == dec, (res.error, dec)
        size = res.clip.frames.shape[1:3]

        def cold():
            video_io._CACHE.clear()
            get_video_clip_frame(video, start, end, duration, cfg)

        cold_s = timed(cold, repeats)
        warm_s = timed(lambda: get_video_clip_frame(video, start, end, duration, cfg), repeats)
        rows.append({"gop_s": gop, "span": kind, "frames": n, "decoder": dec, "cold_ms": 1e3 * statistics.median(cold_s),
                     "warm_ms": 1e3 * statistics.median(warm_s)})
    scfg = ToolConfig(max_frames=n, store_dir=store_dir, store_fill_on_miss=False)
    res = get_video_clip_frame(video, start, end, duration, scfg)
    assert res.ok and res.clip.source == "store", res.error
    store_s = timed(lambda: get_video_clip_frame(video, start, end, duration, scfg), repeats)
    h, w = size
    cmd = [ffmpeg, "-v", "error", "-threads", "1", "-ss", f"{start}", "-to", f"{end}", "-i", video,
           "-vf", f"fps={fps},scale={w}:{h}", "-threads", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    ff_ms = 1e3 * statistics.median(timed(lambda: subprocess.run(cmd, capture_output=True, check=True), repeats))
    for r in rows:
        r.update(store_ms=1e3 * statistics.median(store_s), ffmpeg_ms=ff_ms, ffmpeg_over_cold=ff_ms / r["cold_ms"],
                 ffmpeg_over_warm=ff_ms / r["warm_ms"], size=[h, w])
        print(f"{gop:>3}s {kind:>6} {n:>3} {r['decoder']:>10} cold {r['cold_ms']:8.1f} warm {r['warm_ms']:8.1f} "
              f"store {r['store_ms']:6.1f} ffmpeg {ff_ms:8.1f} ms  ffmpeg/cold {r['ffmpeg_over_cold']:.2f}",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sparse-repeats", type=int, default=1, help="sparse spans decode ~10x more: fewer repeats")
    ap.add_argument("--sizes", default="8,16,32,64")
    ap.add_argument("--gops", default="1,10")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    import imageio_ffmpeg
    import torch

    torch.set_num_threads(1)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    decoders = [d for d in DECODERS if unavailable(d) is None]
    skipped = {d: unavailable(d) for d in DECODERS if d not in decoders}
    print(f"decoders: {decoders}; unavailable: {skipped}; auto -> {resolve('auto')}", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, store_info = [], {}
    with tempfile.TemporaryDirectory(prefix="tool_decode_store_") as store_dir:
        for gop in (int(g) for g in args.gops.split(",")):
            video = make_video(ffmpeg, args.duration, gop)
            store = store_for(ToolConfig(store_dir=store_dir))
            t0 = time.perf_counter()
            store.fill(video)
            fill_s = time.perf_counter() - t0
            entry = next(e for e in store.entries() if e[2] == store.key(video))
            store_info[f"gop{gop}s"] = {"fill_s": fill_s, "bytes": entry[1],
                                        "gb_per_hour": entry[1] / 2**30 * 3600 / args.duration}
            print(f"video {video}: store fill {fill_s:.1f} s, {entry[1] / 2**20:.0f} MB", flush=True)
            for kind in ("dense", "sparse"):
                for n in sizes:
                    reps = args.repeats if kind == "dense" else args.sparse_repeats
                    rows += bench_cell(ffmpeg, video, gop, kind, n, args.duration, decoders, store_dir, reps)
            # the store's latency distribution: 64-frame dense clips at different places of the video
            cfg = ToolConfig(max_frames=64, store_dir=store_dir, store_fill_on_miss=False)
            lat = []
            for i in range(STORE_CALLS):
                s = 10.0 + i * (args.duration - 50.0) / STORE_CALLS
                t0 = time.perf_counter()
                res = get_video_clip_frame(video, s, s + 31.99, args.duration, cfg)
                lat.append(time.perf_counter() - t0)
                assert res.ok and res.clip.source == "store" and len(res.clip.frames) == 64
            lat.sort()
            store_info[f"gop{gop}s"].update(p50_ms=1e3 * lat[len(lat) // 2], p99_ms=1e3 * lat[-1])
    summary = {"auto": resolve("auto"), "decoders": decoders, "unavailable": skipped, "store": store_info}
    for dec in decoders:
        mine = [r for r in rows if r["decoder"] == dec]
        summary[dec] = {
            "ffmpeg_over_cold_median": statistics.median(r["ffmpeg_over_cold"] for r in mine),
            "ffmpeg_over_cold_min": min(r["ffmpeg_over_cold"] for r in mine),
            f"cold_{max(sizes)}_median_ms": statistics.median(r["cold_ms"] for r in mine
                                                              if r["frames"] == max(sizes))}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"tool_decode_{socket.gethostname()}.json")
    with open(path, "w") as f:
        json.dump({"host": socket.gethostname(), "cpu": platform.processor() or platform.machine(),
                   "repeats": args.repeats, "sparse_repeats": args.sparse_repeats, "video_s": args.duration,
                   "summary": summary, "rows": rows}, f, indent=1)
    print(f"saved {path}")
    print("RESULT " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
