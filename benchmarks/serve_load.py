"""Load on the Serve endpoint (tiny model, loopback HTTP): requests/s and p50/p99 latency at 1, 4 and 16
concurrent clients, every status code counted (the target is zero 5xx), and the tool deployment's replica count
rising under load and falling after.

    PYTHONPATH=. python benchmarks/serve_load.py [--requests-per-client 4] [--out benchmarks/results/serve_load.txt]

Every request carries a client-prefilled tool call (random window), so each one runs global view -> tool ->
model and loads the tool deployment; the random tiny model then generates up to max_tokens_per_turn tokens.
Every fifth request is a bad one (path outside the roots, unknown model, corrupt video): they must be 4xx.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReplicaWatch(threading.Thread):
    """Polls serve.status() for the tool deployment's RUNNING replicas."""

    def __init__(self, app: str, deployment: str = "ToolServer", period: float = 0.5):
        super().__init__(daemon=True)
        self.app, self.dep, self.period = app, deployment, period
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def count(self) -> int:
        from ray import serve

        d = serve.status().applications[self.app].deployments[self.dep]
        return int(d.replica_states.get("RUNNING", 0))

    def run(self):
        while not self.stop.is_set():
            try:
                self.samples.append((time.monotonic() - self.t0, self.count()))
            except Exception:  # noqa: BLE001 - status may be briefly unavailable
                pass
            time.sleep(self.period)

    def between(self, a: float, b: float) -> list[int]:
        return [n for t, n in self.samples if a <= t <= b]


def make_request(url: str, model: str, videos: list[tuple[str, float]], bad: dict, rng: random.Random,
                 kind: str = "good"):
    video, duration = rng.choice(videos)
    start = round(rng.uniform(0, duration - 10), 2)
    call = json.dumps({"name": "get_video_clip_frame", "arguments": {"start_time": start, "end_time": start + 8}})
    body = {"model": model, "max_tokens": 400, "messages": [
        {"role": "user", "content": [{"type": "video_url", "video_url": {"url": video}},
                                     {"type": "text", "text": "When does the blue square appear?"}]},
        {"role": "assistant", "content": f"<think>Check the clip.</think><tool_call>{call}</tool_call>"}]}
    if kind == "bad":
        which = rng.choice(list(bad))
        body = {**body, **bad[which]} if which == "model" else {**body, "messages": [
            {"role": "user", "content": [{"type": "video_url", "video_url": {"url": bad[which]}},
                                         {"type": "text", "text": "?"}]}]}
    t0 = time.perf_counter()
    try:
        r = requests.post(url, json=body, timeout=300)
        status = r.status_code
    except requests.RequestException:
        status = 599  # transport failure counts as a server error
    return kind, status, time.perf_counter() - t0


def run_level(url, model, videos, bad, clients: int, per_client: int, seed: int) -> dict:
    rng = random.Random(seed)
    n = max(8, clients * per_client)
    jobs = [(random.Random(rng.random()), "bad" if i % 5 == 4 else "good") for i in range(n)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda j: make_request(url, model, videos, bad, *j), jobs))
    wall = time.perf_counter() - t0
    good = [lat for kind, status, lat in results if kind == "good" and status == 200]
    statuses: dict[int, int] = {}
    for _, status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    wrong_bad = sum(1 for kind, status, _ in results if kind == "bad" and not 400 <= status < 500)
    return {"clients": clients, "requests": len(results), "wall_s": wall, "rps": len(results) / wall,
            "good_ok": len(good), "p50_s": float(np.percentile(good, 50)) if good else float("nan"),
            "p99_s": float(np.percentile(good, 99)) if good else float("nan"),
            "statuses": statuses, "n5xx": sum(v for k, v in statuses.items() if k >= 500), "bad_not_4xx": wrong_bad}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests-per-client", type=int, default=4)  # at least 8 requests per level
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--out", default="benchmarks/results/serve_load.txt")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import ray
    from ray import serve

    from actors.serve import build_app
    from vital_ray.config import ServeJobConfig, load_config
    from vital_ray.data.synthetic import generate_dataset
    from vital_ray.models import ensure_model_folder
    from vital_ray.config import ModelConfig

    root = os.path.expanduser("~/.cache/vital_ray/serve_bench")
    records, _ = generate_dataset(root, num_videos=2, duration_s=60.0, records_per_video=1, seed=5)
    corrupt = os.path.join(root, "corrupt.mp4")
    with open(corrupt, "wb") as f:
        f.write(os.urandom(4096))
    videos = [(r.video, r.duration) for r in records]
    bad = {"outside": "/etc/passwd", "model": {"model": "nope"}, "corrupt": corrupt}
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    cfg = load_config(ServeJobConfig, data={
        "model": {"path": ensure_model_folder(ModelConfig())},
        "serve": {"allowed_roots": [root], "port": port, "max_tokens": 1000, "tool_min_replicas": 1,
                  "tool_max_replicas": 3, "tool_target_ongoing_requests": 1, "tool_upscale_delay_s": 1.0,
                  "tool_downscale_delay_s": 15.0},
        "rollout": {"max_tokens_per_turn": 32, "temperature": 0.7},
        "view": {"max_frames": 8, "max_pixels": 12544}, "tool": {"max_frames": 8, "max_pixels": 12544}})
    app = "vital_bench"
    serve.run(build_app(cfg), name=app, route_prefix="/")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    make_request(url, cfg.serve.model_name, videos, bad, random.Random(0))  # warm-up (not counted)
    watch = ReplicaWatch(app)
    watch.start()
    lines = [f"# vital_ray Serve load test  {time.strftime('%Y-%m-%d %H:%M:%S')}",
             f"# machine: {os.cpu_count()} cores shared with other agents; load average at start "
             f"{os.getloadavg()[0]:.1f} (numbers are noisy and pessimistic)",
             "# tiny Qwen2.5-VL (random weights) on CPU, 1 model replica (batching up to 8), tool deployment "
             "autoscaling 1..3 (target_ongoing_requests=1)",
             "# each request: global view + 1 prefilled tool call + model turn(s) of <= 32 tokens; every 5th request "
             "is invalid (must be 4xx); p50/p99 over the valid ones",
             f"{'clients':>7} {'requests':>8} {'req/s':>7} {'p50_s':>7} {'p99_s':>7} {'5xx':>4} {'bad!=4xx':>8} "
             f"{'tool replicas (min..max)':>25}  statuses"]
    levels = [int(x) for x in args.levels.split(",")]
    results = []
    for i, c in enumerate(levels):
        t_a = time.monotonic() - watch.t0
        res = run_level(url, cfg.serve.model_name, videos, bad, c, args.requests_per_client, seed=i)
        t_b = time.monotonic() - watch.t0
        reps = watch.between(t_a, t_b) or [0]
        res["tool_replicas"] = (min(reps), max(reps))
        res["window_s"] = (t_a, t_b)
        results.append(res)
        lines.append(f"{c:>7} {res['requests']:>8} {res['rps']:>7.2f} {res['p50_s']:>7.2f} {res['p99_s']:>7.2f} "
                     f"{res['n5xx']:>4} {res['bad_not_4xx']:>8} {min(reps):>12}..{max(reps):<12} "
                     f"{json.dumps(res['statuses'], sort_keys=True)}")
        print(lines[-1], flush=True)
    t_end = time.monotonic() - watch.t0
    peak = max(n for _, n in watch.samples)
    at_end = watch.samples[-1][1]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and watch.count() > cfg.serve.tool_min_replicas:
        time.sleep(1)
    t_idle = time.monotonic() - watch.t0
    watch.stop.set()
    watch.join()
    final = watch.samples[-1][1]
    lines.append(f"# tool replicas: 1 at start, peak {peak} under load, {at_end} when the load stopped at "
                 f"{t_end:.0f}s, {final} after {t_idle - t_end:.0f}s idle (min_replicas {cfg.serve.tool_min_replicas},"
                 f" downscale_delay_s {cfg.serve.tool_downscale_delay_s})")
    timeline = " ".join(f"{t:.0f}s:{n}" for t, n in watch.samples[:: max(1, len(watch.samples) // 40)])
    windows = ", ".join(f"{r['clients']} clients {r['window_s'][0]:.0f}-{r['window_s'][1]:.0f}s" for r in results)
    lines.append(f"# load windows: {windows}")
    lines.append(f"# replica timeline (s since load start:replicas): {timeline}")
    lines.append("# the tool deployment is loaded in bursts (each request's global view + clip, ~0.1-0.3 s each,"
                 " while the CPU model turn takes seconds): it scales up on the burst when many requests start "
                 "together and back down once the model, not the tool, is the bottleneck")
    lines.append(f"# total 5xx: {sum(r['n5xx'] for r in results)}")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    serve.shutdown()
    ray.shutdown()
    return 0 if all(r["n5xx"] == 0 and r["bad_not_4xx"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
