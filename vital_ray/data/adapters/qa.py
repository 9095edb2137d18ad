"""Video QA: Video-MME, MMVU, Video-MMMU, LongVideo-Reason, VSI-Bench, Video-R1 data."""

from __future__ import annotations

import os

from vital_ray.data.adapters.base import (
    MCQ_PROMPT, NUMBER_PROMPT, OPEN_PROMPT, AdapterError, Collector, LoadResult, find_video, letter_of,
    make_record, need, options_block, subfolders, table_rows,
)
from vital_ray.rewards.parsing import answer_text


def load_videomme(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """Video-MME videomme/test-00000-of-00001.parquet (or its JSON export): video_id, duration (short/medium/long),
    domain, sub_category, url, videoID, question_id, task_type, question, options ['A. ...', ...], answer."""
    col = Collector("videomme", on_bad)
    for where, row in table_rows(annotation):
        def build(row=row, where=where):
            yt = str(need(row, "videoID", where))
            options = list(need(row, "options", where))
            letter = letter_of(need(row, "answer", where), options, where)
            text = MCQ_PROMPT.format(question=need(row, "question", where).strip(), options=options_block(options))
            return make_record(need(row, "question_id", where), find_video(data_root, yt, f"data/{yt}", f"video/{yt}"),
                               None, text, letter, "videomme", "mcq", row.get("task_type", ""),
                               duration_category=row.get("duration", ""), domain=row.get("domain", ""))
        col.add(where, build)
    return col.result


def load_mmvu(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """MMVU validation.json: [{id, video (HF URL .../resolve/main/videos/<Subject>/<n>.mp4), question_type
    (multiple-choice | open-ended), question, choices {A: .., ...}, answer, metadata {subject, ...}}]. Open-ended
    items are scored by the LLM judge (eval.scoring=official) or VITAL's MRA on the first number (vital)."""
    col = Collector("mmvu", on_bad)
    for where, row in table_rows(annotation):
        def build(row=row, where=where):
            url = str(need(row, "video", where))
            rel = url.split("/resolve/main/", 1)[-1] if "/resolve/main/" in url else url
            # the HF repo keeps videos/<Subject>/<n>.mp4; n repeats across subjects, so no basename fallback
            video = find_video(data_root, rel, rel.split("/", 1)[-1])
            qtype = str(need(row, "question_type", where))
            question = need(row, "question", where).strip()
            subject = (row.get("metadata") or {}).get("subject", "")
            if qtype == "multiple-choice":
                choices = need(row, "choices", where, dict)
                options = [f"{k}. {v}" for k, v in sorted(choices.items()) if str(v).strip()]
                letter = letter_of(need(row, "answer", where), options, where)
                return make_record(need(row, "id", where), video, None,
                                   MCQ_PROMPT.format(question=question, options="\n".join(options)), letter, "mmvu",
                                   "mcq", qtype, subject=subject)
            if qtype != "open-ended":
                raise AdapterError(f"{where}: field 'question_type' must be multiple-choice or open-ended, got {qtype!r}")
            return make_record(need(row, "id", where), video, None, OPEN_PROMPT.format(question=question),
                               str(need(row, "answer", where)), "mmvu", "open", qtype, subject=subject)
        col.add(where, build)
    return col.result


def load_videommmu(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """Video-MMMU <Track>/test-00000-of-00001.parquet (Perception, Comprehension, Adaptation): id, question,
    options, answer, question_type (multiple-choice | open), ... Videos are `<id>.mp4` (lmms-eval keeps them in
    per-discipline folders; any sub-folder of data_root is searched)."""
    col = Collector("videommmu", on_bad)
    track = os.path.basename(os.path.dirname(os.path.abspath(annotation)))
    for where, row in table_rows(annotation):
        def build(row=row, where=where):
            rid = str(need(row, "id", where))
            nested = [os.path.join(d, rid) for d in subfolders(data_root, "*") + subfolders(data_root, "*/*")]
            video = find_video(data_root, rid, *nested)
            question = need(row, "question", where).strip()
            options = list(row.get("options") or [])
            if str(row.get("question_type", "multiple-choice")) == "multiple-choice" and options:
                letter = letter_of(need(row, "answer", where), options, where)
                return make_record(rid, video, None, MCQ_PROMPT.format(question=question,
                                   options=options_block(options)), letter, "videommmu", "mcq", track)
            return make_record(rid, video, None, OPEN_PROMPT.format(question=question),
                               str(need(row, "answer", where)), "videommmu", "open", track)
        col.add(where, build)
    return col.result


LVR_SHARDS = "longvideo_eval_subset*"


def load_longvideo_reason(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """LongVideo-Reason test.jsonl: {problem_id, problem (question with its lettered options), data_type,
    problem_type, reasoning, videos: 'longvila_videos/<id>.<ext>', answer: '<answer>X</answer>'}."""
    col = Collector("longvideo_reason", on_bad)
    for where, row in table_rows(annotation):
        def build(row=row, where=where):
            rel = str(need(row, "videos", where))
            name = os.path.basename(rel)
            # Long-RL's eval reads longvila_videos/; the published shards extract to longvideo_eval_subset<N>/
            video = find_video(data_root, rel, name, *(f"{d}/{name}" for d in subfolders(data_root, LVR_SHARDS)))
            raw = str(need(row, "answer", where))
            letter = (answer_text(raw) or raw).strip()
            if len(letter) != 1 or not letter.isalpha():
                raise AdapterError(f"{where}: answer {raw!r} is not an option letter")
            text = need(row, "problem", where).strip() + "\nAnswer with the option's letter from the given choices directly."
            return make_record(f"lvr_{need(row, 'problem_id', where)}", video, None, text, letter.upper(),
                               "video_r1/multiple_choice", "mcq", row.get("problem_type", ""))
        col.add(where, build)
    return col.result


VSI_NUMERIC = ("object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation")


def load_vsibench(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """VSI-Bench test-00000-of-00001.parquet (or test.jsonl): id, dataset (arkitscenes | scannet | scannetpp),
    scene_name, question_type, question, options (MCQ types) or None, ground_truth. Videos are
    `<dataset>/<scene_name>.mp4`."""
    col = Collector("vsibench", on_bad)
    for where, row in table_rows(annotation):
        def build(row=row, where=where):
            ds, scene = str(need(row, "dataset", where)), str(need(row, "scene_name", where))
            qtype = str(need(row, "question_type", where))
            gt = need(row, "ground_truth", where)
            question = need(row, "question", where).strip()
            video = find_video(data_root, f"{ds}/{scene}", scene)
            if qtype in VSI_NUMERIC:
                return make_record(f"vsi_{need(row, 'id', where)}", video, None,
                                   NUMBER_PROMPT.format(question=question), str(gt), "vsibench", "mra", qtype)
            options = list(need(row, "options", where))
            letter = letter_of(gt, options, where)
            return make_record(f"vsi_{need(row, 'id', where)}", video, None,
                               MCQ_PROMPT.format(question=question, options=options_block(options)), letter,
                               "vsibench", "mcq", qtype)
        col.add(where, build)
    return col.result


VIDEO_R1_KINDS = {"multiple choice": ("mcq", "video_r1/multiple_choice"), "numerical": ("numeric", "video_r1/numerical"),
                  "regression": ("regression", "video_r1/regression"), "free-form": ("free_form", "video_r1/free_form"),
                  "OCR": ("ocr", "video_r1/OCR")}


def load_video_r1(annotation: str, data_root: str, on_bad: str = "skip") -> LoadResult:
    """Video-R1-260k.json / Video-R1-COT-165k.json: [{problem_id, problem, data_type (video | image),
    problem_type, options, solution '<answer>..</answer>', path './Video-R1-data/...', data_source}]. Image
    samples are reported and skipped (the eval is video only)."""
    col = Collector("video_r1", on_bad)
    for where, row in table_rows(annotation):
        def build(row=row, where=where):
            if row.get("data_type", "video") != "video":
                raise AdapterError(f"{where}: data_type {row.get('data_type')!r} is not a video sample")
            ptype = str(need(row, "problem_type", where))
            if ptype not in VIDEO_R1_KINDS:
                raise AdapterError(f"{where}: unknown problem_type {ptype!r}; known: {', '.join(VIDEO_R1_KINDS)}")
            metric, source = VIDEO_R1_KINDS[ptype]
            rel = str(need(row, "path", where))
            rel = rel[2:] if rel.startswith("./") else rel
            video = find_video(data_root, rel, f"Video-R1-data/{rel}")  # paths are relative to Video-R1-data/
            raw = str(need(row, "solution", where))
            solution = (answer_text(raw) or raw).strip()
            question = need(row, "problem", where).strip()
            options = list(row.get("options") or [])
            text = MCQ_PROMPT.format(question=question, options=options_block(options)) if options else question
            return make_record(f"vr1_{need(row, 'problem_id', where)}", video, None, text, solution, source, metric,
                               ptype)
        col.add(where, build)
    return col.result
