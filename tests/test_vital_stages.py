"""VITAL's four stage configs: each loads and carries the released scripts' hyper-parameters (values from
docs/real-data.md), bad data mixes fail at start-up, and the four stages run in a chain on MTVR-shaped fixtures
(tests/data/real/mtvr) with the tiny model."""

import os

import pytest

from vital_ray.config import ConfigError, DGRPOJobConfig, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MTVR = os.path.join(ROOT, "tests", "data", "real", "mtvr")
STAGES = ["vital_stage1_sft", "vital_stage2_dgrpo", "vital_stage3_sft", "vital_stage4_dgrpo"]


def stage(name, *overrides):
    return load_config(DGRPOJobConfig, os.path.join(ROOT, "configs", f"{name}.yaml"), list(overrides))


def test_sft_stages_hyper_parameters():
    for name, tools, folder in (("vital_stage1_sft", False, "MTVR_CoT"), ("vital_stage3_sft", True, "MTVR_Tool_CoT")):
        cfg = stage(name, "data.root=/mtvr")
        assert (cfg.sft.tools, cfg.sft.lr, cfg.sft.batch_size, cfg.sft.epochs, cfg.sft.train_vision) == (
            tools, 1e-5, 256, 1, True)
        assert all(f.path.startswith(f"/mtvr/{folder}/") for f in cfg.data.files)
        assert (cfg.tool.max_frames, cfg.tool.max_pixels) == (64, 224 * 224)
    assert len(stage("vital_stage1_sft").data.files) == 7  # MTVR-CoT without the Video-R1 image file
    assert [os.path.basename(f.path) for f in stage("vital_stage3_sft").data.files] == [
        "vidchapters.json", "longvideo-reason.json"]


def test_rl_stages_hyper_parameters():
    for name, turns, total in (("vital_stage2_dgrpo", 0, 1024), ("vital_stage4_dgrpo", 2, 7168)):
        cfg = stage(name)
        r = cfg.rollout
        assert (cfg.learner.lr, cfg.trainer.prompts_per_iter, r.group_size, cfg.learner.ppo_epochs) == (1e-6, 64, 8, 1)
        assert (r.max_turns, r.max_tokens_per_turn, r.max_total_tokens) == (turns, 1024, total)
        assert (cfg.algo.estimator, cfg.algo.kl_coef, r.repetition_penalty, r.temperature) == ("dgrpo", 0.01, 1.05, 1.0)
        assert cfg.model.freeze_vision is True
        assert (cfg.view.max_frames, cfg.view.max_pixels, cfg.tool.max_frames, cfg.tool.max_pixels) == (
            64, 50176, 64, 50176)
    assert [f.data_source for f in stage("vital_stage2_dgrpo").data.files][-1] == "per_record"


def test_bad_data_mix_fails_at_start_up():
    with pytest.raises(ConfigError, match=r"data.files\[0\] \(/d/extra.json\): no data_source"):
        stage("vital_stage3_sft", "data.files=[{path: /d/extra.json}]")
    with pytest.raises(ConfigError, match="data_source 'nope' is not in reward.tasks"):
        stage("vital_stage3_sft", "data.files=[{path: /d/extra.json, data_source: nope}]")
    with pytest.raises(ConfigError, match="unknown_key"):
        stage("vital_stage4_dgrpo", "data.files=[{path: /d/vidchapters.json, unknown_key: 1}]")


TINY = ["model.path=''", "model.dtype=float32", "learner.num_workers=1", "learner.num_gpus_per_worker=0",
        "learner.num_cpus_per_worker=1", "learner.mixed_precision=none", "learner.activation_checkpointing=false",
        "learner.sync_method=object_store", "learner.micro_batch_size=4", "rollout.backend=hf",
        "rollout.num_workers=1", "rollout.num_gpus_per_worker=0", "rollout.num_cpus_per_worker=1",
        "rollout.group_size=2", "rollout.max_tokens_per_turn=16", "rollout.max_total_tokens=96",
        "rollout.batch_size=4", "view.max_frames=4", "view.max_pixels=3136", "tool.max_frames=4",
        "tool.max_pixels=3136", "tool.decoder=decord", "tool_pool.min_workers=1", "tool_pool.max_workers=1",
        "tool_pool.request_resources=false", "sft.steps=2", "sft.batch_size=2", "sft.checkpoint_every=0",
        "trainer.iterations=1", "trainer.prompts_per_iter=2", "trainer.checkpoint_every=1",
        "trainer.wandb_project=''", "trainer.progress=false", "ray.address=''", f"data.root={MTVR}"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """The fixtures' two 8 s videos."""
    from vital_ray.data.synthetic import write_video

    root = tmp_path_factory.mktemp("mtvr_videos")
    for name in ("kc01.mp4", "kc02.mp4"):
        write_video(str(root / name), 8.0, [], size=(64, 48), fps=4)
    return str(root)


FILES = {"vital_stage1_sft": "MTVR_CoT/charades.json", "vital_stage2_dgrpo": "MTVR_RL/charades.json",
         "vital_stage3_sft": "MTVR_Tool_CoT/vidchapters.json", "vital_stage4_dgrpo": "MTVR_Tool_RL/vidchapters.json"}


def tiny_stage(name, videos, out):
    return stage(name, *TINY, f"data.video_root={videos}", f"trainer.output_dir={out}",
                 "data.files=[{path: '${data.root}/" + FILES[name] + "'}]")


@pytest.mark.ray
def test_tool_cot_record_trains_on_its_own_turns_with_its_clip_and_view(videos, ray_local, tiny_model_path):
    from pipelines.session import ToolSession, load_training_records

    cfg = tiny_stage("vital_stage3_sft", videos, "/unused")
    records, errors = load_training_records(cfg)
    assert errors == [] and [r.id for r in records] == ["tool1_000101", "tool1_000102"]
    session = ToolSession(cfg, tiny_model_path)
    try:
        trajs = session.teacher_trajectories(records, tools=True)
    finally:
        session.shutdown()
    assert [t.sample_id for t in trajs] == ["tool1_000101#0", "tool1_000102#0"]
    own = trajs[0]
    assert own.gen_texts == records[0].solution  # the record's two turns, verbatim
    view, clip = own.videos
    assert view.shape[0] == 16  # video_kwargs.max_frames=256 over view.max_frames=4: all 16 frames at 2 fps
    assert view.shape[1] * view.shape[2] <= 3136  # video_kwargs.max_pixels
    assert (clip.start, clip.end) == (2.1, 7.3) and clip.shape[0] <= 4  # tool_params; tool.max_frames
    assert trajs[1].videos[0].shape[0] == 4  # no video_kwargs: the config's view


@pytest.mark.ray
@pytest.mark.slow  # about 4 minutes on 2 cores: two Ray Train SFT runs and two DGRPO iterations
def test_four_stages_chain_on_mtvr_fixtures(videos, ray_local, tmp_path):
    import json

    from pipelines import dgrpo, sft
    from vital_ray.training import checkpoint

    model = None
    for name in STAGES:  # each stage starts from the previous one's final checkpoint, as VITAL's
        cfg = tiny_stage(name, videos, str(tmp_path / name))
        run = sft.train if name.endswith("sft") else dgrpo.train
        model = run(cfg, model)
        assert checkpoint.read_state(model)["step"] == (2 if name.endswith("sft") else 1), name
        assert model.startswith(str(tmp_path / name) + os.sep)
    with open(tmp_path / "vital_stage3_sft" / "sft_samples.json") as f:
        assert json.load(f) == ["tool1_000101#0", "tool1_000102#0"]  # both Tool-CoT records, their own traces
    with open(tmp_path / "vital_stage1_sft" / "sft_samples.json") as f:
        assert json.load(f) == ["charades_cot_0#0", "charades_cot_1#0"]
