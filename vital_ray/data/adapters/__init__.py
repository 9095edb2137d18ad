"""Benchmark adapters: each reads one dataset's public annotation format into `Record`s.

    from vital_ray.data.adapters import ADAPTERS, load_benchmark
    result = load_benchmark("charades", data_root="/data/charades")   # -> LoadResult(records, errors, missing)

`ADAPTERS[name]` gives the loader, the default annotation file (relative to data_root) and the metric family
used to aggregate its scores (`vital_ray.evaluation.metrics.aggregate`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from vital_ray.data.adapters import gqa, grounding, mtvr, qa
from vital_ray.data.adapters.base import AdapterError, LoadResult


@dataclass(frozen=True)
class Adapter:
    name: str
    load: Callable[..., LoadResult]  # (annotation, data_root, on_bad) -> LoadResult
    default_file: str  # relative to data_root
    family: str  # metric family
    title: str


ADAPTERS: dict[str, Adapter] = {a.name: a for a in (
    Adapter("charades", grounding.load_charades, "charades_sta_test.txt", "grounding", "Charades-STA"),
    Adapter("activitynet", grounding.load_activitynet, "val_2.json", "grounding", "ActivityNet-MR (Captions)"),
    Adapter("vidchapters", grounding.load_vidchapters, "chapters_vmr_test.json", "grounding", "VidChapters-7M"),
    Adapter("vuetr", grounding.load_vuetr, "VUE-TR_ground_truth.json", "vuetr", "VUE-TR (Vidi)"),
    Adapter("nextgqa", gqa.load_nextgqa, "test.csv", "nextgqa", "NExT-GQA"),
    Adapter("rextime", gqa.load_rextime, "rextime_val.json", "rextime", "ReXTime"),
    Adapter("videomme", qa.load_videomme, "videomme/test-00000-of-00001.parquet", "qa", "Video-MME"),
    Adapter("mmvu", qa.load_mmvu, "validation.json", "qa", "MMVU"),
    Adapter("videommmu", qa.load_videommmu, "Perception/test-00000-of-00001.parquet", "qa", "Video-MMMU"),
    Adapter("longvideo_reason", qa.load_longvideo_reason, "test.jsonl", "qa", "LongVideo-Reason"),
    Adapter("vsibench", qa.load_vsibench, "test-00000-of-00001.parquet", "vsibench", "VSI-Bench"),
    Adapter("video_r1", qa.load_video_r1, "Video-R1-260k.json", "qa", "Video-R1 data"),
    Adapter("mtvr", mtvr.load_mtvr, "test.json", "mixed", "MTVR / VITAL JSON records"),
)}


def load_benchmark(name: str, data_root: str, annotation: str = "", on_bad: str = "skip",
                   tasks: dict | None = None) -> LoadResult:
    """Records of benchmark `name`; `annotation` defaults to the adapter's file under data_root (a relative
    annotation path is taken relative to data_root). `tasks` (`reward.tasks`) routes MTVR records to metrics."""
    if name not in ADAPTERS:
        raise AdapterError(f"unknown benchmark {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    adapter = ADAPTERS[name]
    path = annotation or adapter.default_file
    path = path if os.path.isabs(path) else os.path.join(data_root, path)
    if not os.path.exists(path):
        raise AdapterError(f"{path}: file not found (benchmark {name}: pass the annotation file)")
    root = data_root or os.path.dirname(path)
    return adapter.load(path, root, on_bad, tasks) if name == "mtvr" else adapter.load(path, root, on_bad)


__all__ = ["ADAPTERS", "Adapter", "AdapterError", "LoadResult", "load_benchmark"]
