"""`vital-ray prepare-frames --config configs/demo.yaml tool.store_dir=/fast/frames`: fill the frame store ahead
of time (docs/frame-store.md).

One Ray task per distinct video of the config's data (data.files / data.train_file / the synthetic set) decodes
its tool.source_fps grid at tool.max_pixels into tool.store_dir. Stored videos are skipped; broken ones are
reported and never stored. The store is per node unless tool.store_dir is shared storage: tasks run where Ray
places them, so on a multi-node cluster point tool.store_dir at storage the tool nodes share.
"""

from __future__ import annotations

import json
import sys
import time

import ray

from vital_ray.config import ConfigError, DGRPOJobConfig


def _fill(video: str, tool_cfg) -> str:
    from vital_ray.tools.decoders.base import VideoError
    from vital_ray.tools.frame_store import store_for

    try:
        return store_for(tool_cfg).fill(video)
    except (VideoError, ValueError) as e:
        return f"failed: {e}"


def prepare(cfg: DGRPOJobConfig) -> dict:
    """-> {"videos", "filled", "present", "failed": {video: reason}, "store_gb", "seconds"}; printed as JSON."""
    from pipelines.session import init_ray, load_training_records
    from vital_ray.tools.frame_store import store_for

    if not cfg.tool.store_dir or cfg.tool.decoder == "frames":
        raise ConfigError("prepare-frames needs tool.store_dir (and a decoder other than frames)")
    t0 = time.perf_counter()
    records, _ = load_training_records(cfg)
    videos = sorted({r.video for r in records})
    init_ray(cfg)
    task = ray.remote(num_cpus=1)(_fill)
    results = dict(zip(videos, ray.get([task.remote(v, cfg.tool) for v in videos])))
    out = {"videos": len(videos), "filled": sum(r == "filled" for r in results.values()),
           "present": sum(r == "present" for r in results.values()),
           "failed": {v: r[len("failed: "):] for v, r in results.items() if r.startswith("failed")},
           "store_gb": store_for(cfg.tool).size_bytes() / 2**30, "seconds": time.perf_counter() - t0}
    print(json.dumps(out), flush=True)
    return out


def main(argv=None) -> int:
    from pipelines.dgrpo import run_cli

    return run_cli(lambda cfg, *_: prepare(cfg), argv)


if __name__ == "__main__":
    sys.exit(main())
