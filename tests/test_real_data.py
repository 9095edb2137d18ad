"""Real published formats (tests/data/real/: rows written here in the exact layouts of the public releases):
MTVR Tool-CoT records train on their own turns, published edge-case spans load, official archive layouts are
found, ambiguous videos are errors, and both scoring modes follow their reference scripts. Expected numbers are
worked out by hand in the comments."""

import os
import random
import shutil

import pytest

from vital_ray.data.adapters import load_benchmark
from vital_ray.data.records import RecordError, load_records
from vital_ray.data.traces import cot_trace, teacher_trace
from vital_ray.evaluation.metrics import aggregate, score_sample
from vital_ray.rewards.parsing import mcq_letter

REAL = os.path.join(os.path.dirname(__file__), "data", "real")
TOOL_COT = os.path.join(REAL, "mtvr", "MTVR_Tool_CoT", "vidchapters.json")


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory):
    from vital_ray.data.synthetic import write_video

    path = str(tmp_path_factory.mktemp("mp4") / "tiny.mp4")
    write_video(path, 4.0, [], size=(64, 48), fps=5)
    return path


def root_of(tmp_path, tiny_mp4, name, videos):
    root = tmp_path / name
    shutil.copytree(os.path.join(REAL, name), root)
    for rel in videos:
        os.makedirs(os.path.dirname(root / rel), exist_ok=True)
        shutil.copy(tiny_mp4, root / rel)
    return str(root)


def ans(text):
    return f"<think>...</think><answer>{text}</answer>"


# -- MTVR ---------------------------------------------------------------------------------------------------

def test_mtvr_tool_cot_records_keep_their_own_turns_window_and_view(tmp_path, tiny_mp4):
    for v in ("kc01.mp4", "kc02.mp4"):
        shutil.copy(tiny_mp4, tmp_path / v)
    recs, errors = load_records(TOOL_COT, str(tmp_path))
    assert errors == []
    repr_rec, list_rec = recs
    assert repr_rec.data_source == list_rec.data_source == "vidchapter"  # no data_source: from the file name
    assert isinstance(repr_rec.solution, list) and len(repr_rec.solution) == 2  # the repr-string, parsed
    assert repr_rec.video_kwargs == {"max_pixels": 3136, "max_frames": 256}  # `parallel` is a loader hint
    trace = teacher_trace(repr_rec, random.Random(0))
    assert (trace.start, trace.end) == (2.1, 7.3)  # tool_params
    assert trace.turn1 == repr_rec.solution[0] and "Zoom in" not in trace.turn1
    assert trace.turn2.endswith("<answer>The event happens in the 3.00 - 7.00 seconds.</answer>")
    trace = teacher_trace(list_rec, random.Random(0))
    assert (trace.start, trace.end) == (1.0, 5.0)  # no tool_params: turn 1's own call
    assert cot_trace(repr_rec) is None  # two turns are a tool target, not a text CoT


def test_mtvr_cot_string_solution_is_the_stage1_target(tmp_path, tiny_mp4):
    for v in ("kc01.mp4", "kc02.mp4"):
        shutil.copy(tiny_mp4, tmp_path / v)
    recs, _ = load_records(os.path.join(REAL, "mtvr", "MTVR_CoT", "charades.json"), str(tmp_path))
    assert [r.data_source for r in recs] == ["charades", "charades"]
    assert cot_trace(recs[0]) == recs[0].solution and "door opens around 2 s" in cot_trace(recs[0])


@pytest.mark.parametrize("change, msg", [
    ({"solution": "['<think>a</think>', '<answer>b"}, "looks like a list of turns but does not parse"),
    ({"tool_params": "[5, 40]"}, "field 'tool_params' must be '[start, end]'"),
    ({"tool_params": "__import__('os')"}, "field 'tool_params'"),
    ({"video_kwargs": {"max_pixels": 3136, "fps2": 1}}, "video_kwargs key 'fps2'"),
    ({"video_kwargs": {"max_frames": -1}}, "video_kwargs.max_frames must be a positive number"),
])
def test_mtvr_bad_fields_are_named(tmp_path, tiny_mp4, change, msg):
    import json

    shutil.copy(tiny_mp4, tmp_path / "kc01.mp4")
    with open(TOOL_COT) as f:
        row = json.load(f)[0] | change
    path = tmp_path / "vidchapters.json"
    path.write_text(json.dumps([row]))
    recs, errors = load_records(str(path))
    assert recs == [] and len(errors) == 1 and msg in errors[0] and "[0]" in errors[0]


def test_mtvr_without_any_data_source_rule_is_an_error(tmp_path, tiny_mp4):
    shutil.copy(TOOL_COT, tmp_path / "mystery.json")
    with pytest.raises(RecordError, match="no data_source.*data.files"):
        load_records(str(tmp_path / "mystery.json"), on_bad="fail")
    shutil.copy(tiny_mp4, tmp_path / "kc01.mp4")
    recs, _ = load_records(str(tmp_path / "mystery.json"), data_source="vidchapter")
    assert [r.id for r in recs] == ["tool1_000101"]  # the file's configured source (kc02.mp4 is missing)


def test_mtvr_eval_adapter_scores_a_tool_cot_record_against_its_last_answer(tmp_path, tiny_mp4):
    root = tmp_path / "mtvr"
    os.makedirs(root)
    shutil.copy(TOOL_COT, root)
    shutil.copy(tiny_mp4, root / "kc01.mp4")
    res = load_benchmark("mtvr", str(root), "vidchapters.json")
    assert [(r.id, r.data_source, r.extra["metric"], r.solution) for r in res.records] == [
        ("tool1_000101", "vidchapter", "tg", [3.0, 7.0])]
    assert len(res.errors) == 1 and "video not found" in res.errors[0]


# -- published spans ----------------------------------------------------------------------------------------

def test_nextgqa_segments_starting_below_zero_load_and_score(tmp_path, tiny_mp4):
    root = root_of(tmp_path, tiny_mp4, "nextgqa", ["NExTVideo/1201/5100000001.mp4", "NExTVideo/1202/5100000002.mp4"])
    res = load_benchmark("nextgqa", root, "test.csv")
    assert res.errors == []
    assert [r.solution["spans"] for r in res.records] == [[[-0.2, 9.5]], [[10.0, 14.0], [20.5, 30.0]],
                                                          [[-0.1, 4.0]]]
    row = score_sample("gqa", ans("B, 0 - 9.5"), res.records[0].solution)
    assert row["iou"] == pytest.approx(9.5 / 9.7) and row["iop"] == 1.0  # union 9.5 - (-0.2)


def test_rextime_zero_length_windows_load_with_options_from_the_hf_file(tmp_path, tiny_mp4):
    root = root_of(tmp_path, tiny_mp4, "rextime", ["Anet_videos_15fps_short256/v_aaaaaaaaaaa.mp4",
                                                   "Anet_videos_15fps_short256/v_bbbbbbbbbbb.mp4",
                                                   "videos/ccccccccccc_60.0_210.0.mp4"])
    res = load_benchmark("rextime", root, "rextime_val.jsonl")
    assert res.errors == []
    assert [(r.id, r.solution["span"]) for r in res.records] == [
        ("anet_val9001", [1.0, 1.0]), ("anet_val9002", [0.0, 0.0]), ("qvh_val9003", [0.0, 150.5])]
    assert "B. he is about to dive" in res.records[0].text  # options joined by qid
    assert len(res.notes) == 1 and "qvh_val9003 has no options" in res.notes[0]
    assert score_sample("gqa", ans("B, 0 - 2"), res.records[0].solution)["iou"] == 0.0  # no length: no overlap


def test_vidchapters_start_equal_to_end_loads(tmp_path, tiny_mp4):
    root = root_of(tmp_path, tiny_mp4, "vidchapters", ["abcdefghijk.mp4"])
    res = load_benchmark("vidchapters", root)
    assert [(r.id, r.solution) for r in res.records] == [("vc_0", [0.0, 0.0]), ("vc_1", [100.0, 120.0])]


def test_iou_ties_at_one_half_count_officially_and_miss_under_vitals_epsilon():
    gt, pred = [0.1, 9.0], ans("The event happens in the 2.33 - 6.78 seconds.")
    official = score_sample("tg", pred, gt)
    vital = score_sample("tg", pred, gt, scoring="vital")
    assert official["iou"] == 0.5  # 4.45 / 8.9 over max end - min start
    assert 0.4999 < vital["iou"] < 0.5  # eps 1e-4 on both lengths and the union, as VITAL's scripts
    assert aggregate("grounding", [official])["R@0.5"] == 1.0
    assert aggregate("grounding", [vital])["R@0.5"] == 0.0


def test_vital_mode_reads_the_last_pair_of_the_whole_output():
    text = "<think>2 - 8 first</think><answer>The event happens in the 0 - 10 seconds.</answer> then 4 - 6"
    assert score_sample("tg", text, [0, 10])["pred"] == [0.0, 10.0]  # official: inside <answer>
    assert score_sample("tg", text, [0, 10], scoring="vital")["pred"] == [4.0, 6.0]


# -- video layouts ------------------------------------------------------------------------------------------

def test_charades_480p_archive_layout_and_upper_case_extension(tmp_path, tiny_mp4):
    root = root_of(tmp_path, tiny_mp4, "charades", ["Charades_v1_480/QQ1AB.mp4", "Charades_v1_480/QQ2CD.MP4"])
    res = load_benchmark("charades", root)
    assert res.errors == []
    assert [os.path.relpath(r.video, root) for r in res.records] == ["Charades_v1_480/QQ1AB.mp4",
                                                                     "Charades_v1_480/QQ2CD.MP4"]


def test_two_copies_of_a_video_are_an_error_naming_both(tmp_path, tiny_mp4):
    root = root_of(tmp_path, tiny_mp4, "charades", ["Charades_v1_480/QQ1AB.mp4", "QQ1AB.mp4",
                                                    "Charades_v1_480/QQ2CD.mp4"])
    res = load_benchmark("charades", root)
    assert [r.id for r in res.records] == ["QQ2CD_2"]
    assert len(res.errors) == 1 and "ambiguous video: 2 candidates" in res.errors[0]
    assert os.path.join(root, "QQ1AB.mp4") in res.errors[0]
    assert os.path.join(root, "Charades_v1_480", "QQ1AB.mp4") in res.errors[0]


def test_mmvu_videos_sharing_a_file_name_bind_to_their_own_subject(tmp_path, tiny_mp4):
    root = root_of(tmp_path, tiny_mp4, "mmvu", ["videos/Art/0.mp4", "videos/Chemistry/0.mp4"])
    res = load_benchmark("mmvu", root)
    assert [os.path.relpath(r.video, root) for r in res.records] == ["videos/Art/0.mp4", "videos/Chemistry/0.mp4"]
    only_art = root_of(tmp_path / "b", tiny_mp4, "mmvu", ["videos/Art/0.mp4"])
    res = load_benchmark("mmvu", only_art)
    assert [r.id for r in res.records] == ["validation_900"]  # never Art/0.mp4 for the Chemistry question
    assert len(res.errors) == 1 and "videos/Chemistry/0.mp4" in res.errors[0]


def test_longvideo_reason_shard_folders(tmp_path, tiny_mp4):
    root = root_of(tmp_path, tiny_mp4, "longvideo_reason", ["longvideo_eval_subset2/Zz_exp_0001.mp4"])
    res = load_benchmark("longvideo_reason", root)
    assert [os.path.relpath(r.video, root) for r in res.records] == ["longvideo_eval_subset2/Zz_exp_0001.mp4"]


# -- answer readers -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("Option C", "C"), ("I think the answer is C", "C"), ("A dog chases the ball, so B", "B"), ("(D) four", "D"),
    ("The best answer is A.", "A"), ("Answer: E", "E"), ("Obviously", None), ("I", "I"),
])
def test_letter_is_never_the_first_capital_of_a_word(text, want):
    assert mcq_letter(text) == want


def test_videomme_official_letters_are_a_to_d_after_lmms_eval_prefixes():
    assert score_sample("mcq", ans("The best answer is B"), "B", benchmark="videomme")["score"] == 1.0
    assert score_sample("mcq", ans("E"), "B", benchmark="videomme")["pred"] is None  # only A-D are options
    assert score_sample("mcq", ans("Option C"), "C", benchmark="videomme", scoring="vital")["score"] == 1.0


def test_longvideo_reason_official_is_exact_match_vital_reads_the_letter():
    text = ans("A. To check the result.")
    assert score_sample("mcq", text, "A", benchmark="longvideo_reason")["score"] == 0.0  # Long-RL: "A. ..." != "A"
    assert score_sample("mcq", text, "A", benchmark="longvideo_reason", scoring="vital")["score"] == 1.0
    assert score_sample("mcq", ans("A"), "A", benchmark="longvideo_reason")["score"] == 1.0


def test_vsibench_official_number_is_the_first_token():
    # lmms-eval: "about" is not a number -> MRA 0; VITAL: the first number, 4 vs 4 -> 1
    assert score_sample("mra", ans("about 4 chairs"), "4", benchmark="vsibench")["score"] == 0.0
    assert score_sample("mra", ans("about 4 chairs"), "4", benchmark="vsibench", scoring="vital")["score"] == 1.0
    assert score_sample("mra", ans("5. chairs"), "4", benchmark="vsibench")["score"] == pytest.approx(0.6)  # .25
    assert score_sample("mcq", ans("B. left"), "B", benchmark="vsibench")["score"] == 1.0


def test_video_r1_official_multiple_choice_is_exact():
    assert score_sample("mcq", ans("B"), "B", benchmark="video_r1")["score"] == 1.0
    assert score_sample("mcq", ans("B. A military command"), "B", benchmark="video_r1")["score"] == 0.0
    assert score_sample("numeric", ans("1,250"), "1250.0")["score"] == 1.0  # both written with a separator
    assert score_sample("numeric", ans("12"), "12.5")["score"] == 0.0


def test_mmvu_open_answers_need_the_judge_officially_and_use_mra_under_vital():
    with pytest.raises(ValueError, match="eval.judge.base_url"):
        score_sample("open", ans("Dolly zoom"), "Dolly Zoom", benchmark="mmvu")
    # VITAL: MRA on the first number ("0.866 c" -> .866); a text ground truth has no number: 0
    assert score_sample("open", ans("0.866"), "0.866\u202fc", benchmark="mmvu", scoring="vital")["score"] == 1.0
    assert score_sample("open", ans("Dolly zoom"), "Dolly Zoom", benchmark="mmvu", scoring="vital")["score"] == 0.0
