"""wandb: offline unless a key is set; an offline run dir holds the same per-iteration metrics as metrics.jsonl."""

import glob
import json

from vital_ray.metrics import MetricsLogger, wandb_mode


def test_mode_is_offline_without_a_key(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from `wandb login`
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert wandb_mode() == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai login user password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_mode() == "online"
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # an explicit mode wins
    assert wandb_mode() == "disabled"


def test_offline_run_dir_has_the_metrics(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = MetricsLogger(str(tmp_path / "out"), "vital-ray-test", {"trainer": {"iterations": 2}})
    rows = [{"reward/mean": 0.625, "reward/accuracy": 0.5, "tool/peak_queue": 7.0, "time/sync": 0.125},
            {"reward/mean": 0.875, "reward/accuracy": 0.75, "tool/peak_queue": 3.0, "time/sync": 0.25}]
    for step, row in enumerate(rows, 1):
        logger.log(step, row)
    logger.close()
    runs = glob.glob(str(tmp_path / "out/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    blob = open(runs[0], "rb").read()  # the run's protobuf log: keys and JSON values are stored as text
    for key in rows[0]:
        assert key.encode() in blob, key
    assert b"0.875" in blob and b"vital-ray-test" in blob
    with open(tmp_path / "out/metrics.jsonl") as f:
        assert [json.loads(line)["reward/mean"] for line in f] == [0.625, 0.875]
