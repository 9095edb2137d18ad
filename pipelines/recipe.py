"""VITAL's 4-stage recipe: SFT (text CoT) -> DGRPO (single turn) -> SFT (tool use) -> DGRPO (with the clip tool).

    python -m pipelines.recipe --config configs/recipe_tiny.yaml [key=value ...]
    python -m pipelines.recipe --config configs/recipe_tiny.yaml recipe.only=dgrpo_tool   # one stage

Features
- stages from `recipe.stages` (name, kind sft|dgrpo, dotted overrides); each starts from the previous stage's
  final checkpoint (an HF folder) and writes to `<trainer.output_dir>/<stage name>/`
- resumable at any point: a finished stage (its `DONE.json`) is skipped, an interrupted one continues from its
  newest checkpoint (optimizer, RNG, data position), so re-running the same command after a crash continues it
- `recipe.only=NAME` runs one stage, from the previous stage's result if it exists, else from `model.path`
- `recipe.heldout.num_videos=N`: after the last stage, the base model and each stage's result are evaluated with
  tools on and off on N held-out synthetic videos (pipelines/heldout.py: eval.md, eval.json, eval.png)
Order of settings: YAML, then command-line overrides, then the stage's own overrides.
"""

from __future__ import annotations

import json
import os
import sys

from vital_ray.config import DGRPOJobConfig, StageConfig, expand, load_config

DONE = "DONE.json"


def stage_config(path: str | None, overrides: list[str], stage: StageConfig, root: str) -> DGRPOJobConfig:
    return load_config(DGRPOJobConfig, path, [*overrides, *stage.overrides,
                                              f"trainer.output_dir={os.path.join(root, stage.name)}",
                                              "trainer.resume=true"])


def finished(stage_dir: str) -> str | None:
    """The final checkpoint of a finished stage, or None."""
    marker = os.path.join(stage_dir, DONE)
    if not os.path.exists(marker):
        return None
    with open(marker) as f:
        return json.load(f)["final"]


def run(cfg: DGRPOJobConfig, path: str | None, overrides: list[str]) -> str:
    from pipelines import dgrpo, sft
    from pipelines.session import init_ray
    from vital_ray.models import ensure_model_folder

    root = expand(cfg.trainer.output_dir)
    init_ray(cfg)
    model = ensure_model_folder(cfg.model)
    evaluated = {"base": model}
    stages = cfg.recipe.stages
    names = [s.name for s in stages]
    print(f"vital_ray recipe: {' -> '.join(names)}" + (f" (only {cfg.recipe.only})" if cfg.recipe.only else ""),
          flush=True)
    for stage in stages:
        stage_dir = os.path.join(root, stage.name)
        done = finished(stage_dir)
        if cfg.recipe.only and stage.name != cfg.recipe.only:
            model = done or model
            continue
        if done:
            print(f"[recipe] {stage.name}: done ({done})", flush=True)
            model = evaluated[stage.name] = done
            continue
        print(f"[recipe] {stage.name} ({stage.kind}) from {model}", flush=True)
        scfg = stage_config(path, overrides, stage, root)
        model = (sft.train if stage.kind == "sft" else dgrpo.train)(scfg, init_model=model)
        with open(os.path.join(stage_dir, DONE), "w") as f:
            json.dump({"final": model, "stage": stage.name, "kind": stage.kind}, f)
        evaluated[stage.name] = model
    if not cfg.recipe.only:
        link_final(root, model)
        if cfg.recipe.heldout.num_videos:
            from pipelines.heldout import evaluate_models

            evaluate_models(cfg, path, overrides, evaluated)
    print(f"recipe finished: {model} (also {os.path.join(root, 'final')})", flush=True)
    return model


def link_final(root: str, model: str) -> None:
    """`<output_dir>/final` -> the last stage's final checkpoint: a stable path for eval and serve."""
    link, tmp = os.path.join(root, "final"), os.path.join(root, ".final.tmp")
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.relpath(model, root), tmp)
    os.replace(tmp, link)  # atomic: a reader sees the old or the new target


def main(argv=None) -> int:
    from pipelines.dgrpo import run_cli

    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
