"""Typed configuration: dataclasses, loaded with omegaconf from YAML plus dotted CLI overrides.

Unknown keys and wrong types fail at start-up with a :class:`ConfigError` that names the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

PATCH_AREA = 28 * 28  # one merged Qwen2.5-VL vision token covers 28x28 pixels


class ConfigError(ValueError):
    """A configuration problem found at start-up."""


@dataclass
class ModelConfig:
    path: str = ""  # a local HF Qwen2.5-VL folder; empty = build (and cache) the tiny offline model
    cache_dir: str = "~/.cache/vital_ray/models"
    tiny_hidden: int = 64
    tiny_layers: int = 2
    tiny_vision_depth: int = 2
    dtype: str = "float32"  # float32 | bfloat16
    freeze_vision: bool = True  # VITAL freezes the ViT in RL
    seed: int = 0


@dataclass
class VideoViewConfig:
    """The global (low-resolution, sparse) view of the whole video given in the prompt."""

    fps: float = 2.0
    max_frames: int = 8
    min_pixels: int = 4 * PATCH_AREA
    max_pixels: int = 16 * PATCH_AREA
    draw_timestamps: bool = True


@dataclass
class ToolConfig:
    """`get_video_clip_frame` (VITAL semantics: docs/method.md §1.2)."""

    # auto (the fastest decoder that runs here: torchcodec, decord, pyav) | torchcodec | decord | pyav: straight
    # from the video; frames: VITAL's 2 fps JPEG directories (vital_ray.tools.decoders)
    decoder: str = "auto"
    source_fps: float = 2.0  # clip frames are sampled on this grid, as VITAL's 2 fps JPEG contract
    max_frames: int = 64
    min_pixels: int = 4 * PATCH_AREA
    max_pixels: int = 64 * PATCH_AREA  # 50,176 px, about 224x224
    min_clip_s: float = 1.0
    draw_timestamps: bool = True
    timeout_s: float = 60.0
    max_retries: int = 2
    max_source_pixels: int = 1920 * 1088  # larger videos are scaled down while decoding (memory bound)
    # frame store (docs/frame-store.md): each video's source_fps grid at max_pixels, uint8, shared by the node's
    # tool workers; "" = off. Filled in the background on a miss, or ahead of time: vital-ray prepare-frames
    store_dir: str = ""
    store_max_gb: float = 50.0  # least recently used entries are evicted beyond this
    store_fill_on_miss: bool = True


@dataclass
class TaskSpec:
    """How one task (record `data_source`) is scored."""

    kind: str = "tg"  # tg | mcq | numeric | regression | free_form | ocr | gqa_mcq | gqa_free_form
    alpha: float = 0.0  # cut-IoU: clamp((iou - alpha) / (beta - alpha), 0, 1)
    beta: float = 1.0
    use_format: bool = True


def _default_tasks() -> dict[str, TaskSpec]:
    return {
        "synthetic/tg": TaskSpec("tg", 0.0, 1.0),
        "synthetic/mcq": TaskSpec("mcq"),
        "synthetic/flash": TaskSpec("mcq"),
        "charades": TaskSpec("tg"),
        "actnet": TaskSpec("tg"),
        "charades_cutreward": TaskSpec("tg", 0.2, 0.8),
        "actnet_cutreward": TaskSpec("tg", 0.2, 0.8),
        "vidchapter": TaskSpec("tg", 0.0, 0.5),
        "vidchapter_cutreward": TaskSpec("tg", 0.0, 0.5),
        "nextgqa": TaskSpec("gqa_mcq"),
        "rextime": TaskSpec("gqa_free_form"),
        "nextgqa_cutreward": TaskSpec("gqa_mcq", 0.2, 0.8),
        "rextime_cutreward": TaskSpec("gqa_free_form", 0.2, 0.8),
        "video_r1/multiple_choice": TaskSpec("mcq"),
        "video_r1/numerical": TaskSpec("numeric"),
        "video_r1/regression": TaskSpec("regression"),
        "video_r1/free_form": TaskSpec("free_form"),
        "video_r1/OCR": TaskSpec("ocr"),
    }


@dataclass
class RewardConfig:
    tasks: dict[str, TaskSpec] = field(default_factory=_default_tasks)
    format_weight: float = 1.0
    tool_bonus: float = 0.5  # per successful tool call
    tool_bonus_cap: int = 2  # calls paid for
    gqa_iou_weight: float = 0.5  # grounded QA pays span AND answer (fixes the original's IoU-only bug)
    gqa_answer_weight: float = 0.5
    time_scope: str = "answer"  # answer: parse spans inside <answer> only; response: VITAL's whole-text rule


@dataclass
class AlgoConfig:
    estimator: str = "dgrpo"  # dgrpo | grpo
    dgrpo_threshold: float = 2.0  # w = 0.5 + 0.5*clip(threshold - mean_reward, 0, 1); tied to the reward scale
    eps: float = 1e-6
    clip_low: float = 0.2
    clip_high: float = 0.2
    clip_c: float = 3.0  # dual clip for negative advantages
    kl_coef: float = 0.01  # k3 KL loss against the frozen reference; 0 disables the reference model
    entropy_coef: float = 0.0


@dataclass
class RolloutConfig:
    backend: str = "hf"  # hf: transformers generate (CPU or GPU) | vllm (GPU extra)
    num_workers: int = 1
    num_cpus_per_worker: float = 1.0
    num_gpus_per_worker: float = 0.0
    group_size: int = 4  # G rollouts per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_turns: int = 2  # tool calls allowed; a trajectory has at most max_turns + 1 generations
    max_tokens_per_turn: int = 64
    max_total_tokens: int = 512  # generated + tool tokens per trajectory (hard cap, docs/method.md §7 D4)
    batch_size: int = 8  # trajectories generated together per backend call
    max_batch_pixels: int = 2**26  # video pixels (frames x H x W, all clips) in one backend call; >= 1 trajectory
    # vLLM backend (GPU): memory share, CUDA graphs, colocated sleep/wake, context, clips per prompt, weights
    gpu_memory_utilization: float = 0.5
    enforce_eager: bool = False
    sleep_mode: bool = False  # colocated with the learner: free the GPU between rollouts
    max_model_len: int = 16384
    max_videos_per_prompt: int = 8
    load_format: str = "auto"  # dummy: random weights (benchmarks; the learner pushes real ones)
    weight_bucket_mb: int = 512


@dataclass
class ToolPoolConfig:
    min_workers: int = 1
    max_workers: int = 2
    num_cpus_per_worker: float = 0.25
    max_concurrency: int = 4  # concurrent calls per actor
    scale_up_queue: int = 4  # queued calls per worker before growing
    idle_s_before_shrink: float = 10.0
    tool_node_label: str = "tool"  # prefer nodes labelled vital-ray/node-kind=<this> (see cluster/); "" = anywhere
    request_resources: bool = True  # ask the autoscaler for one CPU bundle per wanted worker
    autoscale_interval_s: float = 1.0  # how often an idle pool checks whether to shrink
    # video affinity: a call goes to the worker that served its video last (warm reader, its node's frame store)
    # unless that worker has more than `affinity_slack` calls in flight beyond the least-loaded one
    affinity: bool = True
    affinity_slack: int = 1


@dataclass
class LearnerConfig:
    num_workers: int = 1
    num_cpus_per_worker: float = 1.0
    num_gpus_per_worker: float = 0.0
    backend: str = "auto"  # auto: nccl on GPU, gloo on CPU
    lr: float = 1e-6
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 1.0
    micro_batch_size: int = 4
    ppo_epochs: int = 1
    sync_bucket_mb: int = 64
    step_timeout_s: float = 3600.0  # any learner call (update, sync, checkpoint) longer than this fails the step
    sync_method: str = "object_store"  # object_store: numpy buckets via Ray | nccl: bucketed broadcast on GPUs
    mixed_precision: str = "none"  # bf16: fp32 master weights, bf16 compute (FSDP2 MixedPrecisionPolicy)
    activation_checkpointing: bool = False
    max_tokens_per_micro_batch: int = 0  # > 0: dynamic micro-batches by token budget instead of micro_batch_size
    compile: bool = False  # torch.compile each decoder layer / ViT block (first update pays the compile time)
    save_shard_mb: int = 5000  # checkpoint weights in safetensors shards of at most this size, plus an index

    def __post_init__(self):
        if self.save_shard_mb < 1:
            raise ConfigError(f"learner.save_shard_mb must be >= 1, got {self.save_shard_mb}")


@dataclass
class DataFileConfig:
    """One training file of a stage's data mix (MTVR layout, docs/real-data.md)."""

    path: str = ""
    # for records without one; "" = from the file name (vital_ray.data.records.FILE_SOURCES); "per_record" =
    # every record must carry its own (files mixing tasks, e.g. Video-R1's problem types)
    data_source: str = ""
    video_root: str = ""  # "" = data.video_root


@dataclass
class DataConfig:
    train_file: str = ""  # VITAL-format JSON list; empty (and no files) = generate synthetic videos
    files: list[DataFileConfig] = field(default_factory=list)  # a stage's data mix, concatenated after train_file
    root: str = ""  # the MTVR folder: stage configs write file paths as ${data.root}/MTVR_.../<file>.json
    video_root: str = ""
    synthetic_dir: str = "~/.cache/vital_ray/synthetic"
    num_videos: int = 4
    video_duration_s: float = 120.0
    tasks: list[str] = field(default_factory=lambda: ["tg", "mcq"])
    records_per_video: int = 4
    shuffle_seed: int = 1
    on_bad_record: str = "skip"  # skip | fail


@dataclass
class TrainerConfig:
    iterations: int = 8
    prompts_per_iter: int = 4
    output_dir: str = "outputs/demo"
    checkpoint_every: int = 4
    keep_checkpoints: int = 0  # newest complete checkpoints kept; 0 keeps all
    resume: bool = False  # continue from the newest complete checkpoint in output_dir (if any)
    seed: int = 0
    wandb_project: str = ""  # empty: no wandb; offline unless WANDB_API_KEY is set
    progress: bool = True


@dataclass
class SFTConfig:
    """Supervised stages (VITAL stages 1 and 3) on Ray Train: teacher traces with real clip frames."""

    tools: bool = True  # True: tool-use traces (stage 3); False: text CoT, no tool (stage 1)
    epochs: int = 1  # VITAL trains one epoch per stage
    steps: int = 0  # > 0 overrides epochs
    batch_size: int = 8  # global, split across learner ranks
    lr: float = 1e-5
    traces_per_record: int = 1  # teacher traces per record (different tool windows)
    train_vision: bool = True  # VITAL trains the ViT in SFT (frozen in RL)
    checkpoint_every: int = 0  # steps; 0: only at the end
    max_failures: int = 1  # Ray Train restarts the worker group from the last checkpoint this many times


@dataclass
class StageConfig:
    name: str = ""
    kind: str = "sft"  # sft | dgrpo
    overrides: list[str] = field(default_factory=list)  # dotted overrides of the job config for this stage


def _vital_stages() -> list[StageConfig]:
    return [StageConfig("sft_cot", "sft", ["sft.tools=false"]),
            StageConfig("dgrpo_single", "dgrpo", ["rollout.max_turns=0"]),
            StageConfig("sft_tool", "sft", ["sft.tools=true"]),
            StageConfig("dgrpo_tool", "dgrpo", [])]


@dataclass
class HeldoutConfig:
    """The recipe's closing evaluation (pipelines/heldout.py): the base model and every stage's result, tools on
    and off, on synthetic videos generated with another seed than the training set's."""

    num_videos: int = 0  # 0: no held-out eval
    seed: int = 1000


@dataclass
class RecipeConfig:
    """VITAL's 4 stages; each starts from the previous stage's final checkpoint."""

    stages: list[StageConfig] = field(default_factory=_vital_stages)
    only: str = ""  # run just this stage (from the previous stage's result if it exists, else model.path)
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)


@dataclass
class RayConfig:
    address: str = ""  # empty: start a local cluster
    include_dashboard: bool = False
    num_cpus: int = 0  # 0: Ray decides


@dataclass
class JudgeConfig:
    """The LLM judge of open-ended answers (MMVU, Video-MMMU) under eval.scoring=official: any OpenAI-compatible
    chat endpoint. Verdicts are cached in output_dir/judge_cache.jsonl, so a resumed eval does not ask twice."""

    base_url: str = ""  # e.g. https://api.openai.com/v1; empty: open-ended answers cannot be scored officially
    model: str = "gpt-4o"  # MMVU's official judge
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this env var (a local server may need none)
    prompt: str = ""  # a template with {question} {answer} {response}; empty: MMVU's judge prompt (judge.py)
    max_retries: int = 3
    timeout_s: float = 60.0


@dataclass
class EvalConfig:
    """`vital-ray eval`: one benchmark through the rollout + tool pools, greedy, one rollout per record."""

    benchmark: str = ""  # a name in vital_ray.data.adapters.ADAPTERS (charades, nextgqa, videomme, ...)
    data_root: str = ""  # the dataset folder: annotation files and videos
    annotation: str = ""  # the annotation file; empty: the adapter's default file under data_root
    limit: int = 0  # evaluate the first N records only (0: all)
    tools: bool = True  # False: single turn without the clip tool (sets rollout.max_turns=0)
    batch_size: int = 16  # records per rollout call; the predictions file is appended after each
    output_dir: str = ""  # empty: outputs/eval/<benchmark>[_notools]
    resume: bool = False  # skip the records already in output_dir/predictions.jsonl
    # official: each benchmark's own evaluation code; vital: VITAL's eval scripts (docs/real-data.md)
    scoring: str = "official"
    judge: JudgeConfig = field(default_factory=JudgeConfig)


@dataclass
class ServeConfig:
    """The HTTP endpoint (`vital-ray serve`): where it listens, what input it accepts, its budgets."""

    model_name: str = "vital-ray"  # the id clients pass as `model`
    host: str = "127.0.0.1"  # loopback by default; set 0.0.0.0 deliberately to expose it
    port: int = 8000
    allowed_roots: list[str] = field(default_factory=list)  # videos must resolve (realpath) under one of these
    allow_urls: bool = False  # fetch http(s) video URLs (bounded by the two limits below)
    max_url_bytes: int = 64 * 2**20
    url_timeout_s: float = 20.0
    max_request_bytes: int = 64 * 1024  # JSON body; larger bodies get 413
    # the loop's limits (they replace rollout.max_turns / rollout.max_total_tokens when serving; the per-turn cap
    # and sampling defaults come from `rollout`)
    max_turns: int = 2  # tool calls per request (the loop runs at most max_turns + 1 generations)
    max_tokens: int = 2048  # generated + tool-turn tokens per request; a client's max_tokens can only lower it
    request_timeout_s: float = 120.0
    auth_token_env: str = "VITAL_RAY_SERVE_TOKEN"  # if this env var is set, requests need `Bearer <token>`
    # the model deployment: rollout.backend, one replica per rollout.num_workers with
    # rollout.num_cpus_per_worker / num_gpus_per_worker (the same settings as the training rollout pool)
    tool_num_cpus: float = 0.25
    tool_min_replicas: int = 1
    tool_max_replicas: int = 4
    tool_target_ongoing_requests: float = 2.0
    tool_upscale_delay_s: float = 2.0
    tool_downscale_delay_s: float = 10.0


@dataclass
class ServeJobConfig:
    """Everything `vital-ray serve` / `serve run configs/serve.yaml` reads (the `args` of the Serve app)."""

    serve: ServeConfig = field(default_factory=ServeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(temperature=0.7))
    view: VideoViewConfig = field(default_factory=VideoViewConfig)
    tool: ToolConfig = field(default_factory=ToolConfig)
    ray: RayConfig = field(default_factory=RayConfig)


@dataclass
class DGRPOJobConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    view: VideoViewConfig = field(default_factory=VideoViewConfig)
    tool: ToolConfig = field(default_factory=ToolConfig)
    tool_pool: ToolPoolConfig = field(default_factory=ToolPoolConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


T = TypeVar("T")

_CHOICES = {
    "tool.decoder": ("auto", "torchcodec", "decord", "pyav", "frames"),  # vital_ray.tools.decoders.CHOICES
    "rollout.backend": ("hf", "vllm"),
    "algo.estimator": ("dgrpo", "grpo"),
    "learner.backend": ("auto", "gloo", "nccl"),
    "model.dtype": ("float32", "bfloat16"),
    "learner.sync_method": ("object_store", "nccl"),
    "learner.mixed_precision": ("none", "bf16"),
    "rollout.load_format": ("auto", "dummy", "safetensors"),
    "reward.time_scope": ("answer", "response"),
    "data.on_bad_record": ("skip", "fail"),
    "eval.scoring": ("official", "vital"),
}
_TASK_KINDS = ("tg", "mcq", "numeric", "regression", "free_form", "ocr", "gqa_mcq", "gqa_free_form")


def _validate(cfg: Any) -> None:
    for dotted, allowed in _CHOICES.items():
        obj = cfg
        try:
            for part in dotted.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if obj not in allowed:
            raise ConfigError(f"{dotted}={obj!r} is not one of {allowed}")
    reward = getattr(cfg, "reward", None)
    if reward is not None:
        for name, spec in reward.tasks.items():
            if spec.kind not in _TASK_KINDS:
                raise ConfigError(f"reward.tasks.{name}.kind={spec.kind!r} is not one of {_TASK_KINDS}")
            if not spec.beta > spec.alpha:
                raise ConfigError(f"reward.tasks.{name}: beta ({spec.beta}) must exceed alpha ({spec.alpha})")
    rollout = getattr(cfg, "rollout", None)
    if rollout is not None:
        for key in ("group_size", "max_tokens_per_turn", "max_total_tokens", "num_workers", "batch_size"):
            if getattr(rollout, key) < 1:
                raise ConfigError(f"rollout.{key} must be >= 1, got {getattr(rollout, key)}")
        if rollout.max_turns < 0:
            raise ConfigError(f"rollout.max_turns must be >= 0, got {rollout.max_turns}")
    recipe = getattr(cfg, "recipe", None)
    if recipe is not None:
        names = [s.name for s in recipe.stages]
        for i, st in enumerate(recipe.stages):
            if st.kind not in ("sft", "dgrpo") or not st.name:
                raise ConfigError(f"recipe.stages[{i}]: need a name and kind sft|dgrpo, got {st.name!r}/{st.kind!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"recipe.stages: duplicate stage names {names}")
        if recipe.only and recipe.only not in names:
            raise ConfigError(f"recipe.only={recipe.only!r} is not one of the stages {names}")
    ev = getattr(cfg, "eval", None)
    if ev is not None and (ev.limit < 0 or ev.batch_size < 1):
        raise ConfigError(f"eval: need limit >= 0 and batch_size >= 1, got {ev.limit} and {ev.batch_size}")
    if ev is not None and (ev.judge.max_retries < 0 or ev.judge.timeout_s <= 0):
        raise ConfigError("eval.judge: need max_retries >= 0 and timeout_s > 0")
    data = getattr(cfg, "data", None)
    if data is not None and reward is not None:
        _validate_files(data, reward)
    serve = getattr(cfg, "serve", None)
    if serve is not None:
        for key in ("max_request_bytes", "max_tokens", "max_url_bytes", "tool_min_replicas"):
            if getattr(serve, key) < 1:
                raise ConfigError(f"serve.{key} must be >= 1, got {getattr(serve, key)}")
        if serve.max_turns < 0:
            raise ConfigError(f"serve.max_turns must be >= 0, got {serve.max_turns}")
        if serve.tool_max_replicas < serve.tool_min_replicas:
            raise ConfigError("serve.tool_max_replicas must be >= serve.tool_min_replicas")
        if not 0 < serve.port < 65536:
            raise ConfigError(f"serve.port must be in 1..65535, got {serve.port}")
        if not serve.model_name:
            raise ConfigError("serve.model_name must not be empty")
    pool = getattr(cfg, "tool_pool", None)
    # min_workers 0: an idle pool holds no worker, so the autoscaler can remove every tool node
    if pool is not None and not (0 <= pool.min_workers <= pool.max_workers and pool.max_workers >= 1
                                 and pool.scale_up_queue >= 1
                                 and pool.max_concurrency >= 1 and pool.autoscale_interval_s > 0
                                 and pool.idle_s_before_shrink >= 0 and pool.num_cpus_per_worker >= 0
                                 and pool.affinity_slack >= 0):
        raise ConfigError(f"tool_pool: need 0 <= min_workers ({pool.min_workers}) <= max_workers "
                          f"({pool.max_workers}), max_workers >= 1, scale_up_queue >= 1, max_concurrency >= 1, "
                          "autoscale_interval_s > 0, idle_s_before_shrink >= 0, num_cpus_per_worker >= 0, "
                          "affinity_slack >= 0")
    if rollout is not None and not 0.0 < rollout.gpu_memory_utilization <= 1.0:
        raise ConfigError(f"rollout.gpu_memory_utilization must be in (0, 1], got {rollout.gpu_memory_utilization}")
    tool = getattr(cfg, "tool", None)
    if tool is not None and not (1 <= tool.max_frames and tool.min_pixels <= tool.max_pixels
                                 and tool.store_max_gb > 0):
        raise ConfigError("tool: need max_frames >= 1, min_pixels <= max_pixels and store_max_gb > 0")
    if tool is not None and rollout is not None and tool.max_frames * tool.max_pixels > rollout.max_batch_pixels:
        raise ConfigError(f"one clip (tool.max_frames x tool.max_pixels = {tool.max_frames * tool.max_pixels}) "
                          f"exceeds rollout.max_batch_pixels={rollout.max_batch_pixels}")


def _validate_files(data: DataConfig, reward: RewardConfig) -> None:
    """Every data file has a path and a data_source the reward registry knows (given, or from its file name)."""
    from vital_ray.data.records import FILE_SOURCES, PER_RECORD, source_for_file

    for i, f in enumerate(data.files):
        if not f.path:
            raise ConfigError(f"data.files[{i}].path is empty")
        if f.data_source == PER_RECORD:
            continue
        source = f.data_source or source_for_file(f.path)
        if source is None:
            raise ConfigError(f"data.files[{i}] ({f.path}): no data_source and the file name matches none of "
                              f"{[k for k, _ in FILE_SOURCES]}; set data.files[{i}].data_source")
        if source not in reward.tasks:
            raise ConfigError(f"data.files[{i}] ({f.path}): data_source {source!r} is not in reward.tasks")


_RENAMED = {"tool.backend": "tool.decoder (auto|torchcodec|decord|pyav|frames)"}


def _refuse_renamed(layers) -> None:
    """A key that was renamed fails with its new name, not omegaconf's generic 'not in ToolConfig'."""
    for layer in layers:
        for old, new in _RENAMED.items():
            if OmegaConf.select(layer, old, default=None) is not None:
                raise ConfigError(f"{old} was renamed: use {new}")


def load_config(schema: type[T], yaml_path: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                data: dict | None = None) -> T:
    """Build `schema` from defaults, then a YAML file, then a dict (`data`, e.g. a Serve app's `args`), then
    `key.sub=value` overrides (in that order)."""
    try:
        base = OmegaConf.structured(schema)
        layers = [base]
        if yaml_path:
            if not os.path.exists(yaml_path):
                raise ConfigError(f"config file not found: {yaml_path}")
            layers.append(OmegaConf.load(yaml_path))
        if data:
            layers.append(OmegaConf.create(data))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must look like key.sub=value, got {bad}")
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        _refuse_renamed(layers[1:])
        merged = OmegaConf.merge(*layers)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:  # names the key (full_key) and the problem
        key = getattr(e, "full_key", None) or "?"
        msg = str(e).splitlines()[0]
        raise ConfigError(f"bad config key '{key}': {msg}") from None
    _validate(cfg)
    return cfg  # type: ignore[return-value]


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path)) if path else path
