"""The verbatim published rows of ../shared/reference/real-formats (outside this repository; skipped where it
is absent) through the adapters, with tiny stand-in videos in each release's own layout: every row loads, or is
rejected for a reason the official evaluation rejects it too."""

import json
import os
import shutil

import pytest

from vital_ray.data.adapters import load_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.environ.get("VITAL_RAY_REAL_FORMATS", os.path.join(ROOT, "..", "shared", "reference", "real-formats"))
pytestmark = pytest.mark.skipif(not os.path.isdir(REF), reason=f"no reference rows at {REF}")


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory):
    from vital_ray.data.synthetic import write_video

    path = str(tmp_path_factory.mktemp("mp4") / "tiny.mp4")
    write_video(path, 4.0, [], size=(64, 48), fps=5)
    return path


def load(tmp_path, tiny_mp4, folder, name, annotation, videos):
    root = tmp_path / folder
    shutil.copytree(os.path.join(REF, folder), root)
    for rel in videos:
        os.makedirs(os.path.dirname(root / rel), exist_ok=True)
        shutil.copy(tiny_mp4, root / rel)
    return load_benchmark(name, str(root), annotation)


def _json(*parts):
    with open(os.path.join(REF, *parts)) as f:
        return json.load(f)


def test_charades_test_lines_all_load_train_reversed_spans_are_rejected(tmp_path, tiny_mp4):
    vids = "3MSZA AMT7R AKO6M FPJ9D D7W4E FFYL6 AO8RW Y6R7T LEOL6 IOL8Q AKKWU".split()
    res = load(tmp_path, tiny_mp4, "charades", "charades", "charades_sta_test.txt",
               [f"Charades_v1_480/{v}.mp4" for v in vids])
    assert len(res.records) == 9 and res.errors == []  # the 9 lines, double spaces included
    train = load_benchmark("charades", str(tmp_path / "charades"), "charades_sta_train.txt")
    assert len(train.records) == 2 and len(train.errors) == 3  # lines 3-5: start > end (VITAL drops them too)
    assert all("ends before it starts" in e for e in train.errors)


def test_activitynet_every_sentence_is_a_query(tmp_path, tiny_mp4):
    for split in ("val_1.json", "val_2.json"):
        data = _json("activitynet", split)
        res = load(tmp_path / split, tiny_mp4, "activitynet", "activitynet", split, [f"{v}.mp4" for v in data])
        assert res.errors == [] and len(res.records) == sum(len(v["sentences"]) for v in data.values())


def test_nextgqa_all_questions_including_negative_starts(tmp_path, tiny_mp4):
    videos = [f"NExTVideo/{p}.mp4" for p in _json("nextgqa", "map_vid_vidorID.json").values()]
    loaded = {split: load(tmp_path / split, tiny_mp4, "nextgqa", "nextgqa", split, videos)
              for split in ("test.csv", "val.csv")}
    assert [(len(r.records), r.errors) for r in loaded.values()] == [(4, []), (7, [])]
    spans = {r.id: r.solution["spans"] for r in loaded["test.csv"].records}
    assert spans["4152556613_0"] == [[-0.1, 11.0]]  # one of the 36 test questions starting below 0


def test_rextime_github_and_hf_rows(tmp_path, tiny_mp4):
    videos = ["videos/2I9-kvemtSU_510.0_660.0.mp4"] + [f"Anet_videos_15fps_short256/v_{v}.mp4" for v in
                                                       ("ZMTi498qnPc", "NDK0XQnsnmA", "vlX9sU9bM9s", "0dkIbKXXFzI")]
    res = load(tmp_path, tiny_mp4, "rextime", "rextime", "rextime_val.jsonl", videos)
    assert res.errors == [] and len(res.records) == 5
    assert {r.id: r.solution["span"] for r in res.records}["anet_val867"] == [1.0, 1.0]
    assert len(res.notes) == 4  # only qvh_val241 has its options in the HF file
    hf = load_benchmark("rextime", str(tmp_path / "rextime"), "rextime_val.json")
    assert [(r.id, r.solution) for r in hf.records] == [("qvh_val241", {"answer": "A", "span": [0.0, 28.0]})]


def test_qa_benchmarks_load_every_row(tmp_path, tiny_mp4):
    import pyarrow.parquet as pq

    vm = pq.read_table(os.path.join(REF, "videomme/videomme/test-00000-of-00001.parquet")).to_pylist()
    res = load(tmp_path, tiny_mp4, "videomme", "videomme", "videomme/test-00000-of-00001.parquet",
               sorted({f"data/{r['videoID']}.MP4" for r in vm}))
    assert res.errors == [] and len(res.records) == 3
    mmvu = _json("mmvu", "validation.json")
    res = load(tmp_path, tiny_mp4, "mmvu", "mmvu", "validation.json",
               [r["video"].split("/resolve/main/")[1] for r in mmvu])
    assert res.errors == [] and len(res.records) == 9 and len({r.video for r in res.records}) == 9
    vs = pq.read_table(os.path.join(REF, "vsibench/test-00000-of-00001.parquet")).to_pylist()
    res = load(tmp_path, tiny_mp4, "vsibench", "vsibench", "test-00000-of-00001.parquet",
               sorted({f"{r['dataset']}/{r['scene_name']}.mp4" for r in vs}))
    assert res.errors == [] and len(res.records) == 2
    res = load(tmp_path, tiny_mp4, "longvideo_reason", "longvideo_reason", "test.jsonl",
               ["longvideo_eval_subset1/I_Q3ajyOrcI.mp4"])
    assert res.errors == [] and [r.solution for r in res.records] == ["B"]
    res = load(tmp_path, tiny_mp4, "video_r1", "video_r1", "Video-R1-260k.json",
               ["Video-R1-data/LLaVA-Video-178K/liwei_youtube_videos/videos/youtube_video_2024/ytb_7nRmsEw7nsE.mp4"])
    assert res.errors == [] and [r.solution for r in res.records] == ["A"]


def test_vuetr_rows_with_their_segments(tmp_path, tiny_mp4):
    gt = _json("vuetr", "VUE-TR_ground_truth.json")
    res = load(tmp_path, tiny_mp4, "vuetr", "vuetr", "VUE-TR_ground_truth.json",
               sorted({f"videos/{r['video_id']}.mp4" for r in gt}))
    assert res.errors == [] and len(res.records) == len(gt)
    assert max(len(r.solution) for r in res.records) == 10  # query 187


def test_mtvr_tool_cot_record(tmp_path, tiny_mp4):
    res = load(tmp_path, tiny_mp4, "mtvr", "mtvr", "vidchapters.json", ["jOiOkFwBpNI.mp4"])
    assert res.errors == []
    assert [(r.id, r.data_source, r.solution) for r in res.records] == [("tool1_000003", "vidchapter", [85.0, 105.0])]
