"""Temporal grounding: Charades-STA, ActivityNet Captions (ActivityNet-MR), VidChapters-7M, VUE-TR (Vidi)."""

from __future__ import annotations

import csv
import os

from vital_ray.data.adapters.base import (
    TG_MULTI_PROMPT, TG_PROMPT, AdapterError, Collector, LoadResult, find_video, json_items, make_record, need,
    number, span,
)


def _charades_durations(annotation: str, data_root: str) -> dict[str, float]:
    """Video lengths from Charades_v1_test.csv / Charades_v1_train.csv (columns id, ..., length), when present
    next to the annotation or under data_root; otherwise durations are probed from the videos."""
    out: dict[str, float] = {}
    for folder in dict.fromkeys([os.path.dirname(annotation), data_root]):
        for name in ("Charades_v1_test.csv", "Charades_v1_train.csv"):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                with open(path, newline="", encoding="utf-8") as f:
                    for row in csv.DictReader(f):
                        try:
                            out[row["id"]] = float(row["length"])
                        except (KeyError, TypeError, ValueError):
                            continue
    return out


CHARADES_DIRS = ("Charades_v1_480", "Charades_v1", "videos")  # the 480p and original archives extract to these


def load_charades(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """charades_sta_test.txt: one query per line, `VIDEO_ID START END##sentence` (seconds)."""
    col = Collector("charades", on_bad)
    durations = _charades_durations(annotation, data_root)
    try:
        with open(annotation, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise AdapterError(f"{annotation}: file not found") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{annotation}:{n}"

        def build(line=line, where=where, n=n):
            head, sep, sentence = line.partition("##")
            parts = head.split()
            if not sep or len(parts) != 3 or not sentence.strip():
                raise AdapterError(f"{where}: expected 'VIDEO_ID START END##sentence', got {line!r}")
            vid = parts[0]
            gt = span(parts[1:], where, "START END")
            video = find_video(data_root, vid, *(f"{d}/{vid}" for d in CHARADES_DIRS))
            return make_record(f"{vid}_{n}", video,
                               durations.get(vid), TG_PROMPT.format(query=sentence.strip().rstrip(".")), gt,
                               "charades", "tg")
        col.add(where, build)
    return col.result


def _dense_captions(col: Collector, annotation: str, data_root: str, data_source: str) -> None:
    """ActivityNet-Captions-style JSON {video_id: {duration, timestamps: [[s, e], ...], sentences: [...]}}:
    one grounding query per sentence."""
    for line, vid, item in json_items(annotation):
        where = f"{annotation}:{line}"

        def build_all(vid=vid, item=item, where=where):
            duration = number(need(item, "duration", where), where, "duration")
            stamps, sents = need(item, "timestamps", where, list), need(item, "sentences", where, list)
            if len(stamps) != len(sents):
                raise AdapterError(f"{where}: {len(stamps)} timestamps but {len(sents)} sentences")
            names = [str(vid)] + ([str(vid)[2:]] if str(vid).startswith("v_") else [])
            video = find_video(data_root, *names, *(f"videos/{n}" for n in names))
            return [(i, stamps[i], sents[i], video, duration) for i in range(len(sents))]

        try:
            queries = build_all()
        except AdapterError as e:
            col.fail(e)
            continue
        for i, stamp, sent, video, duration in queries:
            def build(i=i, stamp=stamp, sent=sent, video=video, duration=duration, vid=vid):
                if not isinstance(sent, str) or not sent.strip():
                    raise AdapterError(f"{where}: sentence {i} is empty")
                gt = span(stamp, where, f"timestamps[{i}]", duration)
                return make_record(f"{vid}_{i}", video, duration, TG_PROMPT.format(query=sent.strip().rstrip(".")),
                                   gt, data_source, "tg")
            col.add(where, build)


def load_activitynet(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """ActivityNet Captions val_1.json / val_2.json (ActivityNet-MR)."""
    col = Collector("activitynet", on_bad)
    _dense_captions(col, annotation, data_root, "actnet")
    return col.result


def load_vidchapters(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """VidChapters-7M chapter grounding: chapters_vmr_{val,test}.json (JSON lines {qid, query, vid, duration,
    relevant_windows}; `vid` is the YouTube id behind a per-video counter) or chapters_dvc_*.json (the
    ActivityNet-Captions layout, one query per chapter)."""
    col = Collector("vidchapters", on_bad)
    first = next(iter(json_items(annotation)), None)
    if first is not None and isinstance(first[2], dict) and "timestamps" in first[2]:
        _dense_captions(col, annotation, data_root, "vidchapter")
        return col.result
    for line, _, row in json_items(annotation):
        where = f"{annotation}:{line}"

        def build(row=row, where=where):
            vid = str(need(row, "vid", where))
            yt = vid[-11:]  # the counter prefix (chapters_to_vmr.py) comes before an 11-character YouTube id
            duration = number(need(row, "duration", where), where, "duration")
            windows = need(row, "relevant_windows", where, list)
            gt = span(windows[0] if windows and isinstance(windows[0], list) else windows, where,
                      "relevant_windows", duration)
            query = need(row, "query", where, str)
            return make_record(f"vc_{need(row, 'qid', where)}", find_video(data_root, yt, f"videos/{yt}"),
                               duration, TG_PROMPT.format(query=query.strip()), gt, "vidchapter", "tg")
        col.add(where, build)
    return col.result


def load_vuetr(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """VUE-TR_ground_truth.json (Vidi): [{query_id, video_id, duration, query, gt: [[s, e], ...],
    duration_category, query_format, query_modality}]; several GT ranges per query."""
    col = Collector("vuetr", on_bad)
    for line, _, row in json_items(annotation):
        where = f"{annotation}:{line}"

        def build(row=row, where=where):
            vid = str(need(row, "video_id", where))
            duration = number(need(row, "duration", where), where, "duration")
            gts = need(row, "gt", where, list)
            spans = [span(g, where, f"gt[{i}]", duration) for i, g in enumerate(gts)]
            return make_record(f"vuetr_{need(row, 'query_id', where)}", find_video(data_root, vid, f"videos/{vid}"),
                               duration, TG_MULTI_PROMPT.format(query=need(row, "query", where, str).strip()),
                               spans, "vidi", "tg_multi", row.get("duration_category", ""),
                               query_format=row.get("query_format", ""), query_modality=row.get("query_modality", ""))
        col.add(where, build)
    return col.result
