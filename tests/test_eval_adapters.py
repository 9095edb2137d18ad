"""Benchmark adapters on small files in each dataset's real distributed format (tests/data/eval/), with tiny real
mp4s standing in for the videos: record contents, line-numbered errors, missing videos reported."""

import json
import os
import shutil

import pytest

from vital_ray.data.adapters import ADAPTERS, AdapterError, load_benchmark
from vital_ray.data.adapters.base import json_items

DATA = os.path.join(os.path.dirname(__file__), "data", "eval")


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory):
    """One real 4 s H.264 video (64x48); copied under each dataset's expected names."""
    from vital_ray.data.synthetic import write_video

    path = str(tmp_path_factory.mktemp("mp4") / "tiny.mp4")
    write_video(path, 4.0, [], size=(64, 48), fps=5)
    return path


def bench_root(tmp_path, tiny_mp4, name, videos):
    """A data root: the fixture files of `name` plus the given video files (relative paths)."""
    root = tmp_path / name
    shutil.copytree(os.path.join(DATA, name), root)
    for rel in videos:
        os.makedirs(os.path.dirname(root / rel), exist_ok=True)
        shutil.copy(tiny_mp4, root / rel)
    return str(root)


def test_every_adapter_has_a_fixture_in_its_real_format():
    for name, adapter in ADAPTERS.items():
        folder = os.path.join(DATA, name)
        assert os.path.isdir(folder), name
        assert os.listdir(folder), name


def test_charades_lines_durations_from_csv_and_errors(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "charades", ["3MSZA.mp4", "AO8RW.mp4"])
    res = load_benchmark("charades", root)
    assert [r.id for r in res.records] == ["3MSZA_1", "3MSZA_2", "AO8RW_3"]
    r = res.records[0]
    assert r.solution == [24.3, 30.4] and r.duration == 31.75  # from Charades_v1_test.csv, not the video
    assert "person turn a light on" in r.text and r.extra["metric"] == "tg" and r.data_source == "charades"
    path = os.path.join(root, "charades_sta_test.txt")
    assert res.errors[0].startswith(f"{path}:4: expected 'VIDEO_ID START END##sentence'")
    assert res.errors[1].startswith(f"{path}:5: video not found") and res.missing_videos[0].endswith("KMD6D.mp4")
    with pytest.raises(AdapterError, match=r"charades_sta_test.txt:4:"):
        load_benchmark("charades", root, on_bad="fail")


def test_activitynet_captions_one_query_per_sentence(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "activitynet", ["uqiMw7tQ1Cc.mp4", "v_bXdq2zI1Ms0.mp4", "v_FsS_NCZEfaI.mp4"])
    res = load_benchmark("activitynet", root)
    assert [r.id for r in res.records] == ["v_uqiMw7tQ1Cc_0", "v_uqiMw7tQ1Cc_1", "v_bXdq2zI1Ms0_0",
                                          "v_bXdq2zI1Ms0_1", "v_bXdq2zI1Ms0_2"]
    assert res.records[0].video.endswith("uqiMw7tQ1Cc.mp4")  # ids without the v_ prefix are found too
    assert res.records[1].solution == [13.79, 54.32] and res.records[1].duration == 55.15
    assert len(res.errors) == 1
    assert ":3: field 'timestamps[0]' span [64.51, 40.2] ends before it starts" in res.errors[0]


def test_vidchapters_vmr_lines(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "vidchapters", ["YiX6r2hS6Ms.mp4"])
    res = load_benchmark("vidchapters", root)
    assert [r.id for r in res.records] == ["vc_17", "vc_18"]
    assert res.records[1].solution == [45.0, 180.0] and res.records[1].video.endswith("YiX6r2hS6Ms.mp4")
    path = os.path.join(root, "chapters_vmr_test.json")
    assert res.errors[0] == f"{path}:3: missing field 'query'"
    assert res.errors[1].startswith(f"{path}:4: video not found") and res.missing_videos == [
        os.path.join(root, "kX9cTqZ1pQa.mp4")]


def test_vuetr_multi_span_and_line_of_the_bad_record(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "vuetr", ["coPfnSFOXj0.mp4"])
    res = load_benchmark("vuetr", root)
    assert [r.solution for r in res.records] == [[[0.0, 32.0]], [[12.0, 19.0], [24.0, 29.0]]]
    assert res.records[1].extra["question_type"] == "ultra-short" and res.records[1].extra["metric"] == "tg_multi"
    path = os.path.join(root, "VUE-TR_ground_truth.json")
    assert res.errors == [f"{path}:38: field 'gt[0]' must be a [start, end] pair, got [15]"]


def test_nextgqa_csv_with_spans_and_video_map(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "nextgqa", ["NExTVideo/1002/4010069381.mp4", "NExTVideo/0089/3055018460.mp4",
                                                       "NExTVideo/1105/7934208866.mp4"])
    res = load_benchmark("nextgqa", root, "val.csv")
    assert [r.id for r in res.records] == ["4010069381_6", "4010069381_9", "3055018460_4"]
    r = res.records[0]
    assert r.solution == {"answer": "C", "span": [0.0, 20.3], "spans": [[0.0, 20.3]]} and r.duration == 53.8
    assert "C. roll the handle" in r.text and r.extra["question_type"] == "CH"
    assert res.records[2].solution["spans"] == [[12.1, 17.1], [20.0, 23.5]]
    path = os.path.join(root, "val.csv")
    assert res.errors == [f"{path}:5: answer 'hug the baby' is not one of the 5 options",
                          f"{path}:6: no span for video 7934208866 question 3 in {os.path.join(root, 'gsub_val.json')}"]


def test_rextime_hf_json(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "rextime", ["qvhighlights/2I9-kvemtSU_510.0_660.0.mp4", "anet/v_ZMTi498qnPc.mp4",
                                                       "anet/v_vlX9sU9bM9s.mp4"])
    res = load_benchmark("rextime", root)
    assert [r.id for r in res.records] == ["qvh_val241", "anet_val92"]
    assert res.records[1].solution == {"answer": "A", "span": [5.0, 8.0]}
    assert res.records[0].extra["question_type"] == "sequential"
    assert res.errors == [f"{os.path.join(root, 'rextime_val.json')}:4: answer 'E' is not one of the 4 options"]


def test_videomme_parquet_rows_and_probed_duration(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "videomme", ["data/fFjv93ACGo8.mp4", "data/sOgr8uYjkGY.mp4"])
    res = load_benchmark("videomme", root)
    assert [(r.id, r.solution) for r in res.records] == [("001-1", "C"), ("001-2", "A")]
    assert res.records[0].duration == pytest.approx(4.0, abs=0.3)  # probed from the mp4 (Video-MME gives none)
    assert res.records[0].extra["question_type"] == "Counting Problem"
    assert res.records[0].extra["duration_category"] == "short"
    path = os.path.join(root, "videomme/test-00000-of-00001.parquet")
    assert res.errors == [f"{path}:row 2: answer 'F' is not one of the 4 options"]


def test_mmvu_choices_and_open_ended(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "mmvu", ["videos/Chemistry/0.mp4", "videos/Computer_Science/0.mp4",
                                                    "videos/Mechanics/4.mp4"])
    res = load_benchmark("mmvu", root)
    assert [(r.id, r.extra["metric"], r.solution) for r in res.records] == [
        ("validation_1", "mcq", "A"), ("validation_2", "open", "Depth-First Search")]
    assert "E. 20.0" in res.records[0].text
    path = os.path.join(root, "validation.json")
    assert res.errors[0].startswith(f"{path}:22: video not found") and res.missing_videos[0].endswith("Mechanics/3.mp4")
    assert res.errors[1] == (f"{path}:32: field 'question_type' must be multiple-choice or open-ended, "
                             "got 'true-false'")


def test_videommmu_parquet(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "videommmu", ["Art/validation_Art_Theory_1.mp4", "validation_Physics_3.mp4"])
    res = load_benchmark("videommmu", root)
    assert [(r.id, r.extra["metric"], r.solution) for r in res.records] == [
        ("validation_Art_Theory_1", "mcq", "B"), ("validation_Physics_3", "open", "9.8")]
    assert "B. Impressionism" in res.records[0].text and res.records[0].extra["question_type"] == "Perception"


def test_longvideo_reason_jsonl(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "longvideo_reason", ["longvila_videos/I_Q3ajyOrcI.mp4",
                                                                "longvila_videos/Zz9gH4uT1cE.mp4"])
    res = load_benchmark("longvideo_reason", root)
    assert [(r.id, r.solution) for r in res.records] == [("lvr_0", "B")]
    path = os.path.join(root, "test.jsonl")
    assert res.errors[0].startswith(f"{path}:2: video not found") and res.missing_videos[0].endswith("k2Fq0xRtY7s.webm")
    assert res.errors[1] == f"{path}:3: answer '<answer>the red one</answer>' is not an option letter"


def test_vsibench_mcq_and_numeric(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "vsibench", ["arkitscenes/41069025.mp4", "scannet/scene0011_00.mp4"])
    res = load_benchmark("vsibench", root)
    got = [(r.id, r.extra["metric"], r.solution, r.extra["question_type"]) for r in res.records]
    assert got == [("vsi_0", "mra", "4", "object_counting"), ("vsi_1", "mcq", "A", "object_rel_direction_easy"),
                   ("vsi_2", "mcq", "C", "object_rel_direction_hard"), ("vsi_3", "mra", "23.5", "room_size_estimation")]
    assert len(res.errors) == 1 and ":row 4: video not found" in res.errors[0]


def test_video_r1_kinds_and_image_rows(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "video_r1", [
        "LLaVA-Video-178K/liwei_youtube_videos/videos/youtube_video_2024/ytb_7nRmsEw7nsE.mp4",
        "Video-R1-data/CLEVRER/video_validation/video_10003.mp4"])
    res = load_benchmark("video_r1", root)
    assert [(r.id, r.extra["metric"], r.solution, r.data_source) for r in res.records] == [
        ("vr1_101", "mcq", "B", "video_r1/multiple_choice"), ("vr1_102", "numeric", "3", "video_r1/numerical")]
    assert res.errors == [f"{os.path.join(root, 'Video-R1-260k.json')}:4: data_type 'image' is not a video sample"]


def test_mtvr_vital_json_with_eval_spellings(tmp_path, tiny_mp4):
    root = bench_root(tmp_path, tiny_mp4, "mtvr", ["3MSZA.mp4", "I_Q3ajyOrcI.mp4"])
    res = load_benchmark("mtvr", root, "test_set_src.json")
    assert [(r.id, r.extra["metric"], r.solution) for r in res.records] == [("charades_0", "tg", [24.3, 30.4]),
                                                                           ("lvr_7", "mcq", "B")]
    assert res.records[1].extra["question_type"] == "goal" and res.records[1].text.startswith("Why?")
    assert res.errors == [f"{os.path.join(root, 'test_set_src.json')}:4: unknown data_source 'some_new_task' "
                          "(not in reward.tasks)"]


def test_json_items_line_numbers_and_syntax_errors(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('[\n {"a": 1},\n\n {"b": 2}\n]\n')
    assert [(line, i, v) for line, i, v in json_items(str(p))] == [(2, 0, {"a": 1}), (4, 1, {"b": 2})]
    p.write_text('{"k1": {"a": 1},\n "k2": {"b": 2,}\n}')
    with pytest.raises(AdapterError, match=r"x.json:2: not valid JSON"):
        list(json_items(str(p)))
    q = tmp_path / "y.jsonl"
    q.write_text(json.dumps({"a": 1}) + "\n{oops\n")
    with pytest.raises(AdapterError, match=r"y.jsonl:2: not valid JSON"):
        list(json_items(str(q)))


def test_unknown_benchmark_and_missing_file(tmp_path):
    with pytest.raises(AdapterError, match="unknown benchmark 'nope'; known: activitynet"):
        load_benchmark("nope", str(tmp_path))
    with pytest.raises(AdapterError, match=r"charades_sta_test.txt: file not found"):
        load_benchmark("charades", str(tmp_path))


def test_mtvr_routes_by_the_configured_reward_tasks(tmp_path, tiny_mp4):
    from vital_ray.config import RewardConfig, TaskSpec

    root = bench_root(tmp_path, tiny_mp4, "mtvr", ["3MSZA.mp4", "I_Q3ajyOrcI.mp4"])
    tasks = {**RewardConfig().tasks, "some_new_task": TaskSpec("mcq")}
    res = load_benchmark("mtvr", root, "test_set_src.json", tasks=tasks)
    assert [(r.id, r.extra["metric"]) for r in res.records][-1] == ("odd_1", "mcq") and not res.errors
