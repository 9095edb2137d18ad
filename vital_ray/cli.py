"""`vital-ray <command> ...`: one entry point for the drivers.

    vital-ray recipe --config configs/demo.yaml          # SFT (Ray Train) then DGRPO, resumable
    vital-ray dgrpo --config configs/demo.yaml rollout.group_size=8 [--resume]
    vital-ray sft --config configs/demo.yaml sft.steps=100 [--resume]
    vital-ray eval --benchmark charades --data-root /data/charades --model /models/ckpt [--no-tools] [--resume]
    vital-ray serve --model outputs/demo/final serve.allowed_roots=[/data/videos]   # OpenAI-compatible HTTP
    vital-ray prepare-frames --config configs/demo.yaml tool.store_dir=/fast/frames   # fill the frame store
    vital-ray submit --address http://127.0.0.1:8265 --follow -- dgrpo --config configs/demo.yaml   # a Ray job
"""

from __future__ import annotations

import sys

COMMANDS = {"dgrpo": "pipelines.dgrpo", "sft": "pipelines.sft", "recipe": "pipelines.recipe",
            "eval": "pipelines.eval", "serve": "pipelines.serve", "submit": "cluster.submit",
            "prepare-frames": "pipelines.prepare_frames"}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip() + "\n\ncommands: " + ", ".join(sorted(COMMANDS)), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
