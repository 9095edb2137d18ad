"""`vital-ray eval` end to end on a real local Ray cluster: tiny Qwen2.5-VL in the rollout pool, decord clip tool
in the tool pool, synthetic H.264 videos under a Charades-STA-format annotation file; resume after a partial run;
tools off."""

import json
import os

import pyarrow.parquet as pq
import pytest

from pipelines.eval import evaluate, main, read_predictions
from vital_ray.config import DGRPOJobConfig, load_config
from vital_ray.evaluation.metrics import aggregate, score_sample

pytestmark = pytest.mark.ray

FAST = ["rollout.max_tokens_per_turn=12", "rollout.max_total_tokens=160", "rollout.num_cpus_per_worker=1",
        "view.max_frames=4", "tool.max_frames=4", "tool.max_pixels=3136", "tool_pool.max_workers=1",
        "trainer.progress=false", "eval.batch_size=2"]


@pytest.fixture(scope="module")
def charades_root(synthetic, tmp_path_factory):
    """charades_sta_test.txt lines for the synthetic grounding records (durations probed from the mp4s), plus
    one line whose video does not exist."""
    records, json_path = synthetic
    lines = [f"{os.path.splitext(os.path.basename(r.video))[0]} {r.solution[0]:.1f} {r.solution[1]:.1f}##"
             f"the {r.extra['event']['colour']} {r.extra['event']['shape']} appears on screen."
             for r in records if r.data_source == "synthetic/tg"][:3]
    lines.append("NOVIDEO 1.0 2.0##nothing happens.")
    root = os.path.dirname(json_path)
    ann = tmp_path_factory.mktemp("charades") / "charades_sta_test.txt"
    ann.write_text("\n".join(lines) + "\n")
    return root, str(ann), len(lines) - 1


def cfg_for(tmp_path, root, annotation, *extra):
    return load_config(DGRPOJobConfig, None, FAST + [f"eval.benchmark={extra[0]}", f"eval.data_root={root}",
                                                     f"eval.annotation={annotation}",
                                                     f"eval.output_dir={tmp_path}", *extra[1:]])


def test_eval_charades_with_tools_then_resume(ray_local, tiny_model_path, charades_root, tmp_path):
    root, ann, n = charades_root
    first = evaluate(cfg_for(tmp_path, root, ann, "charades", "eval.limit=2"))
    assert first["n"] == 2 and first["n_missing_videos"] == 1 and first["n_rejected"] == 1
    before = read_predictions(str(tmp_path / "predictions.jsonl"))
    with open(tmp_path / "load_errors.txt") as f:
        assert "video not found" in f.read()

    with pytest.raises(FileExistsError, match="--resume"):  # never appends to a run by accident
        evaluate(cfg_for(tmp_path, root, ann, "charades"))
    with open(tmp_path / "predictions.jsonl", "a") as f:  # a torn last line, as if killed mid-write
        f.write('{"id": "torn')
    summary = evaluate(cfg_for(tmp_path, root, ann, "charades", "eval.resume=true"))
    rows = read_predictions(str(tmp_path / "predictions.jsonl"))
    assert [r["id"] for r in rows[:2]] == [r["id"] for r in before] and rows[:2] == before  # kept, not redone
    assert len(rows) == n == summary["n"] and len({r["id"] for r in rows}) == n
    for r in rows:  # every row is a real, scored rollout
        assert r["error"] is None and r["turns"] >= 1 and r["response"]
        assert r["score"] == score_sample("tg", r["response"], json.loads(r["solution"]))["score"]
    assert summary["metrics"] == aggregate("grounding", rows)
    assert set(summary["metrics"]) == {"mIoU", "R@0.3", "R@0.5", "R@0.7"}
    table = pq.read_table(tmp_path / "predictions.parquet").to_pylist()
    assert [t["id"] for t in table] == [r["id"] for r in rows]
    with open(tmp_path / "summary.md") as f:
        assert f.read().startswith("| benchmark | n | errors | mIoU |")


def test_eval_cli_tools_off_on_vital_json(ray_local, tiny_model_path, synthetic, tmp_path, capsys):
    _, json_path = synthetic
    rc = main(["--benchmark", "mtvr", "--annotation", json_path, "--limit", "2", "--no-tools",
               "--output-dir", str(tmp_path), *FAST])
    assert rc == 0
    rows = read_predictions(str(tmp_path / "predictions.jsonl"))
    assert len(rows) == 2 and all(r["tool_calls"] == 0 and r["turns"] == 1 for r in rows)
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    assert summary["tools"] is False and summary["n"] == 2 and summary["scoring"] == "official"
    assert "| mtvr (no tools) [scoring=official] |" in capsys.readouterr().out
