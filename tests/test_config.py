"""Typed config: YAML + dotted overrides; bad keys/types/values fail at start-up naming the key."""

import pytest

from vital_ray.config import ConfigError, DGRPOJobConfig, load_config


def test_yaml_then_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("rollout:\n  group_size: 3\nalgo:\n  estimator: grpo\n")
    cfg = load_config(DGRPOJobConfig, str(y), ["rollout.group_size=5", "reward.tasks.mine.kind=mcq"])
    assert cfg.rollout.group_size == 5 and cfg.algo.estimator == "grpo"
    assert cfg.reward.tasks["mine"].kind == "mcq" and cfg.reward.tasks["vidchapter"].beta == 0.5


@pytest.mark.parametrize("override, key", [
    (["rollout.nope=1"], "rollout.nope"),
    (["rollout.group_size=abc"], "rollout.group_size"),
    (["algo.estimator=ppo"], "algo.estimator"),
    (["reward.tasks.x.kind=bogus"], "reward.tasks.x.kind"),
    (["rollout.group_size=0"], "rollout.group_size"),
    (["learner.save_shard_mb=0"], "learner.save_shard_mb"),
    (["reward.tasks.x.alpha=0.9", "reward.tasks.x.beta=0.1"], "reward.tasks.x"),
])
def test_bad_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(DGRPOJobConfig, None, override)


def test_missing_file_and_malformed_override():
    with pytest.raises(ConfigError, match="not found"):
        load_config(DGRPOJobConfig, "/nonexistent.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(DGRPOJobConfig, None, ["rollout.group_size"])


def test_shipped_configs_load():
    import glob

    paths = glob.glob("configs/*.yaml")
    assert paths
    for p in paths:
        if p.endswith("serve.yaml"):  # a Ray Serve config whose app args are a ServeJobConfig
            from pipelines.serve import load_serve_config

            load_serve_config(p)
        else:
            load_config(DGRPOJobConfig, p)


def test_renamed_tool_backend_fails_naming_tool_decoder(tmp_path):
    for args in ((None, ["tool.backend=decord"]), (str(tmp_path / "c.yaml"), [])):
        (tmp_path / "c.yaml").write_text("tool:\n  backend: frames\n")
        with pytest.raises(ConfigError, match="tool.backend was renamed: use tool.decoder"):
            load_config(DGRPOJobConfig, *args)
    assert load_config(DGRPOJobConfig, None, ["tool.decoder=pyav"]).tool.decoder == "pyav"
    with pytest.raises(ConfigError, match="tool.decoder"):
        load_config(DGRPOJobConfig, None, ["tool.decoder=ffmpeg"])
