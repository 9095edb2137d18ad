"""Benchmark evaluation on Ray: the rollout pool generates (greedy, one rollout per record) while the tool pool
cuts the clips the model asks for; each batch is scored and appended to the predictions file.

    vital-ray eval --benchmark charades --data-root /data/charades --model /models/vital-7b [--no-tools]
    vital-ray eval --benchmark nextgqa --data-root /data/nextgqa --annotation val.csv --resume

Writes to output_dir (default outputs/eval/<benchmark>[_notools]):
- predictions.jsonl (appended per batch; the resume point), predictions.parquet (the same rows, at the end)
- summary.json and summary.md: the benchmark's metrics under `eval.scoring` (official | vital: named in both;
  vital_ray/evaluation/metrics.py), counts of
  records, error rows (unreadable video at rollout time, unscorable ground truth; scored 0) and of annotation
  rows rejected at load time (malformed, missing video), which are listed in load_errors.txt
Flags map to `eval.*` fields of `vital_ray.config.EvalConfig`; any dotted override works too
(e.g. rollout.max_tokens_per_turn=1024 view.max_frames=256).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from vital_ray.config import ConfigError, DGRPOJobConfig, expand, load_config

PREDICTIONS = "predictions.jsonl"


def output_dir(cfg: DGRPOJobConfig) -> str:
    ev = cfg.eval
    return expand(ev.output_dir or f"outputs/eval/{ev.benchmark}{'' if ev.tools else '_notools'}")


def read_predictions(path: str) -> list[dict]:
    """Rows written so far; a torn last line (killed mid-write) is dropped and the file truncated before it."""
    if not os.path.exists(path):
        return []
    rows, good_bytes = [], 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                rows.append(json.loads(raw))
            except json.JSONDecodeError:
                break
            good_bytes += len(raw)
    if good_bytes != os.path.getsize(path):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return rows


def score_row(record, traj, scope: str, scoring: str = "official", judge=None) -> dict:
    """One predictions row: what the model wrote, how it was scored (`eval.scoring`), and why not when it was
    not."""
    from vital_ray.evaluation.metrics import score_sample
    from vital_ray.rewards.parsing import MalformedSolution

    row = {"id": record.id, "benchmark": record.extra.get("benchmark", ""), "scoring": scoring,
           "metric": record.extra["metric"],
           "question_type": record.extra.get("question_type", ""), "video": record.video,
           "solution": json.dumps(record.solution), "response": "", "turns": 0, "tool_calls": 0, "tool_ok": 0,
           "stop_reason": "", "error": None, "score": 0.0, "iou": None, "iop": None, "correct": None, "pred": None}
    if traj is None:
        row["error"] = "video could not be read at rollout time (see the tool pool's warning)"
        return row
    row.update(response=traj.response_text, turns=traj.turns, tool_calls=traj.tool_calls, tool_ok=traj.tool_ok,
               stop_reason=traj.stop_reason)
    try:
        scored = score_sample(row["metric"], traj.response_text, record.solution, scope, scoring,
                              row["benchmark"], judge, record.text)
    except MalformedSolution as e:
        row["error"] = f"unscorable ground truth: {e}"
        return row
    row.update(score=float(scored["score"]), iou=scored.get("iou"), iop=scored.get("iop"),
               correct=scored.get("correct"), pred=json.dumps(scored.get("pred")))
    return row


def evaluate(cfg: DGRPOJobConfig) -> dict:
    """Run (or resume) one benchmark; returns the summary (also written to output_dir/summary.json)."""
    from tqdm import tqdm

    from vital_ray.data.adapters import ADAPTERS, AdapterError, load_benchmark
    from vital_ray.rollout.engine import SamplingParams

    ev = cfg.eval
    if ev.benchmark not in ADAPTERS:
        raise ConfigError(f"eval.benchmark={ev.benchmark!r} is not one of {sorted(ADAPTERS)}")
    if not ev.data_root and not ev.annotation:
        raise ConfigError("eval.data_root (or eval.annotation) is required")
    if not ev.tools:
        cfg.rollout.max_turns = 0  # no tool schema in the prompt, one generation per record
    out = output_dir(cfg)
    pred_path = os.path.join(out, PREDICTIONS)
    if os.path.exists(pred_path) and os.path.getsize(pred_path) and not ev.resume:
        raise FileExistsError(f"{pred_path} already holds predictions; pass --resume (eval.resume=true) to "
                              "continue it, or choose another --output-dir")
    annotation = os.path.expanduser(ev.annotation)  # relative: under data_root (or the working directory)
    annotation = os.path.abspath(annotation) if annotation and not ev.data_root else annotation
    try:
        loaded = load_benchmark(ev.benchmark, expand(ev.data_root), annotation, cfg.data.on_bad_record,
                                cfg.reward.tasks)
    except AdapterError as e:
        raise ConfigError(str(e)) from None
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "load_errors.txt"), "w") as f:
        f.writelines(e + "\n" for e in loaded.errors + [f"note (loaded): {n}" for n in loaded.notes])
    records = loaded.records[:ev.limit] if ev.limit else loaded.records
    judge = make_judge(cfg, records, out)
    wanted = {r.id for r in records}
    previous = read_predictions(pred_path)
    mixed = sorted({r.get("scoring", ev.scoring) for r in previous} - {ev.scoring})
    if mixed:
        raise ConfigError(f"{pred_path} was scored with eval.scoring={mixed[0]}; resume it with that mode, or "
                          "write this one to another --output-dir")
    done = {r["id"] for r in previous}
    todo = [r for r in records if r.id not in done]
    print(f"vital_ray eval {ev.benchmark}: {len(records)} records ({len(loaded.errors)} annotation rows rejected, "
          f"{len(loaded.missing_videos)} of them for missing videos; see load_errors.txt), "
          f"{len(wanted & done)} already done, {len(todo)} to run, tools {'on' if ev.tools else 'off'}", flush=True)
    t0 = time.perf_counter()
    if todo:
        _run(cfg, todo, pred_path, SamplingParams(temperature=0.0, top_p=1.0,
                                                  repetition_penalty=cfg.rollout.repetition_penalty,
                                                  seed=cfg.trainer.seed), tqdm, judge)
    rows = [r for r in read_predictions(pred_path) if r["id"] in wanted]
    _write_parquet(rows, os.path.join(out, "predictions.parquet"))
    summary, table = summarize(ev, rows, loaded, time.perf_counter() - t0)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(table + "\n")
    print(table, f"\npredictions: {pred_path}", flush=True)
    return summary


def summarize(ev, rows: list[dict], loaded, seconds: float) -> tuple[dict, str]:
    """(summary.json content, summary.md table) of one benchmark's scored rows; both name the scoring mode."""
    from vital_ray.data.adapters import ADAPTERS
    from vital_ray.evaluation.metrics import aggregate, summary_table

    summary = {"benchmark": ev.benchmark, "scoring": ev.scoring, "tools": ev.tools, "n": len(rows),
               "n_errors": sum(r["error"] is not None for r in rows), "n_rejected": len(loaded.errors),
               "n_missing_videos": len(loaded.missing_videos), "n_notes": len(loaded.notes),
               "tool_calls_per_record": sum(r["tool_calls"] for r in rows) / max(len(rows), 1),
               "metrics": aggregate(ADAPTERS[ev.benchmark].family, rows), "seconds": seconds}
    name = f"{ev.benchmark}{'' if ev.tools else ' (no tools)'} [scoring={ev.scoring}]"
    table = summary_table({name: {"n": summary["n"], "errors": summary["n_errors"], **summary["metrics"]}})
    return summary, table


def make_judge(cfg: DGRPOJobConfig, records: list, out: str):
    """The LLM judge when official scoring has open-ended answers to judge, else None; a missing judge is a
    start-up error, not a failure after hours of generation."""
    from vital_ray.evaluation.judge import Judge
    from vital_ray.evaluation.metrics import JUDGED

    ev = cfg.eval
    if ev.scoring != "official" or ev.benchmark not in JUDGED or not any(
            r.extra.get("metric") == "open" for r in records):
        return None
    if not ev.judge.base_url:
        raise ConfigError(f"{ev.benchmark} has open-ended answers, which eval.scoring=official scores with an LLM "
                          "judge: set eval.judge.base_url (any OpenAI-compatible endpoint), or eval.scoring=vital")
    return Judge(ev.judge, os.path.join(out, "judge_cache.jsonl"))


def _run(cfg: DGRPOJobConfig, todo: list, pred_path: str, greedy, tqdm, judge=None) -> None:
    from pipelines.session import RLSession, init_ray
    from vital_ray.models import ensure_model_folder

    init_ray(cfg)
    session = RLSession(cfg, ensure_model_folder(cfg.model), rewards=False)  # eval scores in the driver
    bar = tqdm(total=len(todo), desc=f"eval {cfg.eval.benchmark}", disable=not cfg.trainer.progress)
    try:
        for i in range(0, len(todo), cfg.eval.batch_size):
            batch = todo[i:i + cfg.eval.batch_size]
            trajs, _ = session.rollout(batch, 1, greedy)
            by_id = {t.sample_id.rsplit("#", 1)[0]: t for t in trajs}
            rows = [score_row(r, by_id.get(r.id), cfg.reward.time_scope, cfg.eval.scoring, judge) for r in batch]
            with open(pred_path, "a") as f:  # one write + fsync per batch: a crash loses at most this batch
                f.write("".join(json.dumps(row) + "\n" for row in rows))
                f.flush()
                os.fsync(f.fileno())
            bar.update(len(batch))
    finally:
        bar.close()
        session.shutdown()


def _write_parquet(rows: list[dict], path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("benchmark", pa.string()), ("scoring", pa.string()),
                        ("metric", pa.string()),
                        ("question_type", pa.string()), ("video", pa.string()), ("solution", pa.string()),
                        ("response", pa.string()), ("turns", pa.int64()), ("tool_calls", pa.int64()),
                        ("tool_ok", pa.int64()), ("stop_reason", pa.string()), ("error", pa.string()),
                        ("score", pa.float64()), ("iou", pa.float64()), ("iop", pa.float64()),
                        ("correct", pa.float64()), ("pred", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def parse_args(argv=None) -> DGRPOJobConfig:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", required=True, help="adapter name, e.g. charades, nextgqa, videomme, vsibench")
    ap.add_argument("--data-root", default="", help="dataset folder (annotations and videos)")
    ap.add_argument("--annotation", default="", help="annotation file (default: the adapter's file under data-root)")
    ap.add_argument("--model", default=None, help="HF Qwen2.5-VL folder (default: the tiny offline model)")
    ap.add_argument("--limit", type=int, default=None, help="first N records only")
    ap.add_argument("--no-tools", action="store_true", help="single turn, no clip tool")
    ap.add_argument("--output-dir", default=None)
    ap.add_argument("--resume", action="store_true", help="skip records already in predictions.jsonl")
    ap.add_argument("--scoring", choices=("official", "vital"), default=None,
                    help="official: each benchmark's own evaluation; vital: VITAL's eval scripts")
    ap.add_argument("--config", default=None, help="YAML file with any job config fields")
    ap.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rollout.max_tokens_per_turn=1024")
    a = ap.parse_args(argv)
    flags = {"eval.benchmark": a.benchmark, "eval.data_root": a.data_root, "eval.annotation": a.annotation,
             "model.path": a.model, "eval.limit": a.limit, "eval.output_dir": a.output_dir, "eval.scoring": a.scoring}
    overrides = [f"{k}={v}" for k, v in flags.items() if v not in (None, "")]
    overrides += ["eval.tools=false"] * a.no_tools + ["eval.resume=true"] * a.resume
    return load_config(DGRPOJobConfig, a.config, overrides + a.overrides)


def main(argv=None) -> int:
    from vital_ray.evaluation.judge import JudgeError

    try:
        evaluate(parse_args(argv))
    except (ConfigError, FileExistsError, JudgeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
