"""Learning happens: the demo's recipe (SFT on tool traces, then tool-augmented DGRPO) on the flash task makes
the tiny model answer held-out videos' questions well above chance with the clip tool, and not without it.

Opt-in (`pytest -m slow tests/test_learning_slow.py`): the whole demo recipe, several minutes on 2 cores."""

import json
import os

import pytest

from vital_ray.config import DGRPOJobConfig, load_config

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(1800)]
DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo.yaml")
CHANCE = 0.25  # four options


def test_demo_recipe_learns_to_use_the_tool_on_heldout_videos(tmp_path):
    from pipelines import recipe

    over = [f"trainer.output_dir={tmp_path / 'demo'}", f"data.synthetic_dir={tmp_path / 'synth'}",
            "trainer.progress=false"]
    recipe.run(load_config(DGRPOJobConfig, DEMO, over), DEMO, over)
    with open(tmp_path / "demo" / "eval.json") as f:
        res = json.load(f)["results"]
    for stage in ("sft_tool", "dgrpo_tool"):
        on, off = res[f"{stage} tools on"], res[f"{stage} tools off"]
        assert on["accuracy"] > CHANCE + 0.25, (stage, on)  # reads the slot's clip
        assert on["accuracy"] > off["accuracy"] + 0.25, (stage, on, off)  # and the tool carries it
        assert on["tool_success"] > 0.9 and on["answered"] > 0.9, (stage, on)
    assert res["base tools on"]["accuracy"] <= CHANCE + 0.1
