"""Grounded QA: NExT-GQA (CSV + span JSON) and ReXTime (JSON / JSON lines)."""

from __future__ import annotations

import json
import os

from vital_ray.data.adapters.base import (
    GQA_NO_OPTIONS_PROMPT, GQA_PROMPT, AdapterError, Collector, LoadResult, find_video, json_items, letter_of,
    make_record, need, number,
    options_block, span, table_rows,
)


def _load_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AdapterError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def load_nextgqa(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """NExT-GQA `val.csv`/`test.csv` (video_id, frame_count, width, height, question, answer (the correct option's
    text), qid, type, a0..a4) with the spans of `gsub_<split>.json` ({video_id: {duration, location: {qid:
    [[s, e], ...]}, fps}}) from the same folder. `map_vid_vidorID.json` (video_id -> NExT-QA folder/file), when
    present, locates the videos."""
    col = Collector("nextgqa", on_bad)
    folder, split = os.path.dirname(annotation), os.path.splitext(os.path.basename(annotation))[0]
    gsub_path = os.path.join(folder, f"gsub_{split}.json")
    if not os.path.exists(gsub_path):
        raise AdapterError(f"{annotation}: span file {gsub_path} not found (NExT-GQA ships gsub_{split}.json "
                           "next to the CSV)")
    gsub = _load_json(gsub_path)
    map_path = os.path.join(folder, "map_vid_vidorID.json")
    vid_map = _load_json(map_path) if os.path.exists(map_path) else {}
    for where, row in table_rows(annotation):
        def build(row=row, where=where):
            vid, qid = str(need(row, "video_id", where)), str(need(row, "qid", where))
            options = [need(row, f"a{i}", where) for i in range(5) if row.get(f"a{i}") not in (None, "")]
            letter = letter_of(need(row, "answer", where), options, where)
            anno = gsub.get(vid)
            if not isinstance(anno, dict) or qid not in (anno.get("location") or {}):
                raise AdapterError(f"{where}: no span for video {vid} question {qid} in {gsub_path}")
            duration = number(anno.get("duration"), where, f"{gsub_path} duration")
            spans = [span(s, where, f"location[{qid}]") for s in anno["location"][qid]]
            names = [n for n in (vid_map.get(vid), vid) if n]
            video = find_video(data_root, *names, *(f"NExTVideo/{n}" for n in names), *(f"videos/{n}" for n in names))
            text = GQA_PROMPT.format(question=need(row, "question", where).strip().rstrip("?") + "?",
                                     options=options_block(options))
            return make_record(f"{vid}_{qid}", video, duration, text, {"answer": letter, "span": spans[0],
                               "spans": spans}, "nextgqa", "gqa", row.get("type", ""))
        col.add(where, build)
    return col.result


REXTIME_DIRS = ("videos", "Anet_videos_15fps_short256", "anet", "activitynet", "qvhighlights")  # README layout first


def _rextime_options(annotation: str) -> dict[str, list]:
    """qid -> options from the HF-format files (rextime_val.json, rextime_test_release.json) next to a GitHub
    GT file: the GitHub JSON lines carry no options, the HF rows do."""
    out: dict[str, list] = {}
    folder = os.path.dirname(annotation)
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith("rextime_") and name.endswith(".json") and path != annotation:
            for _, _, row in json_items(path):
                if isinstance(row, dict) and isinstance(row.get("options"), list):
                    out[str(row.get("qid"))] = row["options"]
    return out


def load_rextime(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """ReXTime rextime_val.json / rextime_test_release.json from the HF dataset: [{qid, vid, duration,
    question, options: [4 texts], ans: letter, span: [s, e], category, source}], or the GitHub GT file
    rextime_val.jsonl (qid, query, duration, vid, relevant_windows, ans; no options: they are taken by qid from
    an HF file in the same folder; a row with none there loads without them and is listed in `notes`).
    Videos: ReXTime's README layout, `videos/` (QVHighlights) and `Anet_videos_15fps_short256/` (ActivityNet)."""
    col = Collector("rextime", on_bad)
    hf_options = None
    for line, _, row in json_items(annotation):
        where = f"{annotation}:{line}"

        def build(row=row, where=where):
            nonlocal hf_options
            vid = str(need(row, "vid", where))
            qid = str(need(row, "qid", where))
            duration = number(need(row, "duration", where), where, "duration")
            options = row.get("options")
            if options is None:
                hf_options = _rextime_options(annotation) if hf_options is None else hf_options
                options = hf_options.get(qid)
            if options is not None and not isinstance(options, list):
                raise AdapterError(f"{where}: field 'options' must be a list, got {options!r}")
            ans = need(row, "ans", where)
            letter = letter_of(ans, options, where) if options else letter_of(ans, list("ABCD"), where)
            raw = row.get("span") or need(row, "relevant_windows", where, list)[0]
            gt = span(raw, where, "span", duration)
            question = str(row.get("question") or need(row, "query", where)).strip()
            names = [vid] + ([vid[2:]] if vid.startswith("v_") else [])
            video = find_video(data_root, *names, *(f"{d}/{n}" for d in REXTIME_DIRS for n in names))
            if options:
                text = GQA_PROMPT.format(question=question, options=options_block(options))
            else:  # rextime_eval scores these rows too: the span fully, the letter only if the model guesses it
                text = GQA_NO_OPTIONS_PROMPT.format(question=question)
                col.result.notes.append(f"{where}: question {qid} has no options (the GitHub GT file carries "
                                        "none; an HF rextime_*.json with this qid next to it supplies them)")
            return make_record(qid, video, duration, text, {"answer": letter, "span": gt},
                               "rextime", "gqa", row.get("category", ""), source=row.get("source", ""))
        col.add(where, build)
    return col.result
