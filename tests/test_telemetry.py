"""Custom metrics reach the node's Prometheus export port (what the dashboard and Grafana read)."""

import time
import urllib.request

import pytest
import ray

from actors.common import free_port_outside_ray_range
from vital_ray.telemetry import Telemetry

pytestmark = pytest.mark.ray


def test_metrics_appear_on_the_export_port():
    port = free_port_outside_ray_range()
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, _metrics_export_port=port)
    try:
        t = Telemetry("test")
        t.set_phase("rollout")
        t.tool_call(0.042, 8, 3)
        t.iteration(7, {"reward/mean": 1.25, "time/sync": 0.08})
        deadline, text = time.time() + 60, ""
        while time.time() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                text = ""
            if "ray_vital_ray_reward_mean" in text and "ray_vital_ray_tool_latency_s_bucket" in text:
                break
            time.sleep(2)
        assert 'ray_vital_ray_phase{' in text and 'phase="rollout"' in text
        line = next(ln for ln in text.splitlines() if ln.startswith("ray_vital_ray_reward_mean{"))
        assert float(line.split()[-1]) == 1.25
        assert "ray_vital_ray_frames_decoded_total" in text
    finally:
        ray.shutdown()
