"""The recipe's closing evaluation: does training teach the model to use the clip tool?

`vital-ray eval` (pipelines/eval.py, greedy, one rollout per record) on synthetic prompts over videos generated
with `recipe.heldout.seed` (never seen in training), for the base model and each stage's final checkpoint, each
with tools on and off. Writes `<output_dir>/eval.md`, `eval.json`, `eval.png` and each run's predictions under
`<output_dir>/eval/<model>_<tools|notools>/`.
"""

from __future__ import annotations

import json
import os

from vital_ray.config import DGRPOJobConfig, expand, load_config

COLUMNS = ("n", "accuracy", "iou", "r@0.5", "answered", "tool_calls_per_answer", "tool_success")


def heldout_records(cfg: DGRPOJobConfig) -> str:
    """The held-out set's records.json (same tasks and sizes as training, another seed: other videos)."""
    from pipelines.session import synthetic_dir
    from vital_ray.data.synthetic import generate_dataset

    h = cfg.recipe.heldout
    _, path = generate_dataset(synthetic_dir(cfg.data.synthetic_dir, cfg.data.tasks, h.seed),
                               num_videos=h.num_videos, duration_s=cfg.data.video_duration_s,
                               tasks=tuple(cfg.data.tasks), records_per_video=cfg.data.records_per_video,
                               seed=h.seed)
    return path


def row_metrics(rows: list[dict]) -> dict:
    """One table row from scored prediction rows. Accuracy over choice/numeric rows, IoU and R@0.5 over
    grounding rows (None where the set has none); answered: rows whose response holds a parsable answer."""
    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    answered = [r for r in rows if r["pred"] not in (None, "null")]
    ious = [r["iou"] or 0.0 for r in rows if r["metric"] == "tg"]
    calls = sum(r["tool_calls"] for r in rows)
    return {"n": len(rows), "accuracy": mean([float(r["correct"] or 0.0) for r in rows if r["metric"] != "tg"]),
            "iou": mean(ious), "r@0.5": mean([float(i >= 0.5) for i in ious]),
            "answered": mean([1.0] * len(answered) + [0.0] * (len(rows) - len(answered))),
            "tool_calls_per_answer": calls / len(answered) if answered else 0.0,
            "tool_success": sum(r["tool_ok"] for r in rows) / calls if calls else None}


def evaluate_models(cfg: DGRPOJobConfig, path: str | None, overrides: list[str], models: dict[str, str]) -> dict:
    """{"<model> tools on|off": metrics} for each named checkpoint; also writes eval.md/json/png."""
    from pipelines import eval as bench

    annotation, root = heldout_records(cfg), expand(cfg.trainer.output_dir)
    results = {}
    for name, model in models.items():
        for tools in (True, False):
            tag = f"{name}_{'tools' if tools else 'notools'}"
            ecfg = load_config(DGRPOJobConfig, path, [*overrides, "eval.benchmark=mtvr", f"eval.annotation={annotation}",
                                                       f"model.path={model}", f"eval.tools={str(tools).lower()}",
                                                       f"eval.output_dir={os.path.join(root, 'eval', tag)}",
                                                       "eval.resume=true", "trainer.progress=false"])
            bench.evaluate(ecfg)
            rows = bench.read_predictions(os.path.join(bench.output_dir(ecfg), bench.PREDICTIONS))
            results[f"{name} tools {'on' if tools else 'off'}"] = row_metrics(rows)
    write_report(root, results, annotation)
    return results


COUNTS = ("n", "tool_calls_per_answer")  # printed as they are; the other columns are shares, in percent


def table(results: dict) -> str:
    def cell(col, v):
        return "" if v is None else str(v) if isinstance(v, int) else f"{v:.2f}" if col in COUNTS else f"{100 * v:.1f}"

    lines = ["| model | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(c, m[c]) for c in COLUMNS) + " |" for name, m in results.items()]
    return "\n".join(lines)


def write_report(root: str, results: dict, annotation: str) -> None:
    text = (f"# Held-out evaluation ({annotation})\n\nGreedy, one rollout per record; accuracy, IoU, R@0.5, answered "
            "and tool success in percent; tool calls per answered record.\n\n" + table(results) + "\n")
    with open(os.path.join(root, "eval.md"), "w") as f:
        f.write(text)
    with open(os.path.join(root, "eval.json"), "w") as f:
        json.dump({"annotation": annotation, "results": results}, f, indent=1)
    plot(results, os.path.join(root, "eval.png"))
    print(text, flush=True)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("accuracy", "iou", "r@0.5", "answered", "tool_success")
            if any(m[k] is not None for m in results.values())]
    fig, ax = plt.subplots(figsize=(1.6 * len(results) + 2, 3.6))
    width = 0.8 / len(keys)
    for j, k in enumerate(keys):
        ax.bar([i + j * width for i in range(len(results))], [100 * (m[k] or 0.0) for m in results.values()],
               width, label=k)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(results))], list(results), rotation=20, ha="right",
                  fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=len(keys))
    ax.set_title("held-out videos: base / SFT / DGRPO, tools on and off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
