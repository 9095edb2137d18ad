"""`vital-ray eval` flags -> typed config, and start-up failures (no Ray needed)."""

import pytest

from pipelines.eval import main, parse_args, read_predictions
from vital_ray.cli import COMMANDS
from vital_ray.config import ConfigError


def test_flags_map_to_eval_config_and_overrides():
    cfg = parse_args(["--benchmark", "nextgqa", "--data-root", "/d", "--annotation", "val.csv", "--model", "/m",
                      "--limit", "5", "--no-tools", "--resume", "--output-dir", "/o", "rollout.max_tokens_per_turn=99"])
    ev = cfg.eval
    assert (ev.benchmark, ev.data_root, ev.annotation, ev.limit, ev.tools, ev.resume, ev.output_dir) == (
        "nextgqa", "/d", "val.csv", 5, False, True, "/o")
    assert cfg.model.path == "/m" and cfg.rollout.max_tokens_per_turn == 99
    assert COMMANDS["eval"] == "pipelines.eval"


def test_bad_start_up_exits_2_with_one_line(tmp_path, capsys):
    assert main(["--benchmark", "nope", "--data-root", str(tmp_path)]) == 2
    assert "eval.benchmark='nope' is not one of" in capsys.readouterr().err
    assert main(["--benchmark", "charades", "--data-root", str(tmp_path), "--output-dir", str(tmp_path / "o")]) == 2
    assert "charades_sta_test.txt: file not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written for a run that could not start
    with pytest.raises(ConfigError, match="eval: need limit >= 0"):
        parse_args(["--benchmark", "charades", "--limit", "-1"])


def test_read_predictions_drops_a_torn_last_line(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "resp')
    assert [r["id"] for r in read_predictions(str(p))] == ["a", "b"]
    assert p.read_text() == '{"id": "a"}\n{"id": "b"}\n'  # truncated, so appends start on a clean line
