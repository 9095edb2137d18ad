"""Jobs on a real `ray start --head` cluster (dashboard, token auth, job server) through `vital-ray submit`.

The head runs on free ports in its own temp dir and process group (`cluster.local_cluster.LocalCluster`); teardown
kills exactly its processes (never `ray stop`, which would stop every Ray cluster on the machine, other users'
included).
"""

import json
import os
import time

import pytest

from cluster.check import METRICS, scrape
from cluster.local_cluster import LocalCluster
from cluster.procs import free_ports
from cluster.submit import build_entrypoint, client, load_runtime_env, main as submit_main, wait
from vital_ray.tools.scaling import NODE_KIND_LABEL

pytestmark = pytest.mark.ray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def head():
    """-> (dashboard URL, metrics export port, temp dir) of a private head node with 2 CPUs, labelled a tool node."""
    cluster = LocalCluster(head_cpus=2, max_tool_nodes=0, head_labels={NODE_KIND_LABEL: "tool"},
                           env={"RAY_metrics_report_interval_ms": "2000"}).start()
    try:
        yield cluster.dashboard_url, cluster.metrics_port, cluster.temp_dir
    finally:
        cluster.stop()  # raises if any of its processes survived


def tiny_dgrpo_overrides(tmp_path, out_dir, iterations: int = 1) -> list[str]:
    """A DGRPO job small enough for a test cluster: 1 prompt x 2 rollouts per iteration, 0.5 CPU per pool."""
    return [f"trainer.iterations={iterations}", "trainer.prompts_per_iter=1", "rollout.group_size=2",
            "rollout.max_tokens_per_turn=12", "rollout.max_total_tokens=200", "rollout.num_cpus_per_worker=0.5",
            "learner.num_cpus_per_worker=0.5", "view.max_frames=4", "tool.max_frames=4", "tool.max_pixels=3136",
            "data.num_videos=1", "data.video_duration_s=30", f"data.synthetic_dir={tmp_path / 'synth'}",
            f"trainer.output_dir={out_dir}", "trainer.progress=false"]


def test_runtime_env_and_entrypoint(tmp_path):
    env = load_runtime_env(working_dir=ROOT)
    assert env["working_dir"] == ROOT and ".git" in env["excludes"] and ".venv" in env["excludes"]
    assert build_entrypoint(["dgrpo", "--config", "c.yaml"]) == \
        "python -m vital_ray.cli dgrpo --config c.yaml ray.address=auto"
    assert build_entrypoint(["python", "-m", "cluster.check"]) == "python -m cluster.check"
    with pytest.raises(ValueError, match="nothing to run"):
        build_entrypoint([])
    with pytest.raises(FileNotFoundError, match="runtime env"):
        load_runtime_env(str(tmp_path / "missing.yaml"))


def test_unreachable_cluster_is_a_clear_error(capsys):
    port = free_ports(1)[0]  # nothing listens there
    assert submit_main(["--address", f"http://127.0.0.1:{port}", "--", "true"]) == 2
    assert "error: Failed to connect" in capsys.readouterr().err


def test_submitted_check_job_runs_logs_and_metrics(head, capsys):
    """A job through `vital-ray submit`: our code arrives with the working dir, the tool pool runs on the cluster,
    its metrics (gauges included: they live while the driver does) are on the head's metrics export port. The job
    waits for its own metrics there before lingering, so a slow export cannot outlast the driver's gauges."""
    url, metrics_port, _ = head
    rc = submit_main(["--address", url, "--working-dir", ROOT, "--", "python", "-m", "cluster.check", "--calls", "8",
                      "--metrics-wait-s", "90", "--linger-s", "10"])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("submitted raysubmit_"), out
    job_id = out.split()[1].rstrip(":")
    deadline, text = time.time() + 150, ""
    while time.time() < deadline and not all(n in text for n in METRICS):
        time.sleep(2)
        text = scrape("127.0.0.1", metrics_port)
    assert all(n in text for n in METRICS), [n for n in METRICS if n not in text]
    assert any(ln.startswith("ray_vital_ray_phase{") and 'phase="tools"' in ln and ln.endswith(" 1.0")
               for ln in text.splitlines())
    assert wait(client(url), job_id, timeout_s=120) == "SUCCEEDED"
    assert submit_main(["--address", url, "--status", job_id]) == 0
    assert capsys.readouterr().out.strip() == "SUCCEEDED"
    assert submit_main(["--address", url, "--logs", job_id]) == 0
    logs = capsys.readouterr().out
    # the head is labelled a tool node
    assert "cluster check: calls=8 ok=8" in logs and "(tool)" in logs and "metrics=exported" in logs


def test_failing_job_reports_failure(head, capsys):
    """--follow streams the job's output and exits 1 when the job fails; --wait does the same silently."""
    url, _, _ = head
    rc = submit_main(["--address", url, "--working-dir", ROOT, "--follow", "--", "python", "-c",
                      "import sys; print('boom'); sys.exit(3)"])
    out = capsys.readouterr().out
    assert rc == 1 and "boom" in out and out.rstrip().endswith("FAILED")
    job_id = out.split()[1].rstrip(":")
    assert submit_main(["--address", url, "--logs", job_id]) == 0
    assert "boom" in capsys.readouterr().out
    assert submit_main(["--address", url, "--wait", "--", "true"]) == 0


def test_submitted_dgrpo_runs_to_the_end(head, tmp_path, capsys):
    """The real driver: one tiny DGRPO iteration as a job, checkpoint written, logs retrievable."""
    url, _, _ = head
    out_dir = tmp_path / "dgrpo"
    rc = submit_main(["--address", url, "--working-dir", ROOT, "--follow", "--", "dgrpo",
                      *tiny_dgrpo_overrides(tmp_path, out_dir)])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert "iter   1 |" in out and list(out_dir.glob("checkpoints/step_*"))
    job_id = out.split()[1].rstrip(":")
    assert submit_main(["--address", url, "--logs", job_id]) == 0
    logs = capsys.readouterr().out
    assert "iter   1 |" in logs and "checkpoint:" in logs
    row = json.loads((out_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert row["tool/calls"] > 0 and row["tool/peak_workers"] >= 1 and "reward/mean" in row and "time/sync" in row
