"""The FSDP2 learner: policy (DGRPO/GRPO) and SFT updates over `TrainSample`s. No Ray in here.

One instance per rank; the Ray actor (actors/learner.py) and the Ray Train SFT loop both drive it.
"""

from __future__ import annotations

import os
import shutil
import warnings
from typing import Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist

from vital_ray.algorithms.losses import kl_k3, masked_mean, policy_loss, total_loss
from vital_ray.batch import TrainSample, micro_batches, pad_micro_batches, token_budget_batches
from vital_ray.config import AlgoConfig, LearnerConfig
from vital_ray.models.attention import load_qwen_vl
from vital_ray.models.inputs import SeqInput, VideoInput, collate, model_kwargs
from vital_ray.training import fsdp
from vital_ray.training.scorer import PolicyScorer

Resolver = Callable[[object], np.ndarray]  # ObjectRef (or array) -> uint8 frames


class FSDPLearner:
    def __init__(self, model_path: str, learner: LearnerConfig, algo: AlgoConfig, dtype: str = "float32",
                 freeze_vision: bool = True, resolve: Resolver = np.asarray, device: torch.device | None = None,
                 ref_path: str | None = None):
        """`model_path` holds the weights to train (a checkpoint when resuming); `ref_path` the KL reference
        (an RL stage's starting model; default `model_path`)."""
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.cfg, self.algo, self.resolve = learner, algo, resolve
        self.device = device or torch.device("cpu")
        self.model_path = model_path
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]

        def load(path: str):
            m = load_qwen_vl(path, torch_dtype, self.device)
            if freeze_vision:
                m.model.visual.requires_grad_(False)
            if learner.compile:
                fsdp.compile_blocks(m)
            return m

        mp = learner.mixed_precision

        model = load(model_path)
        if learner.activation_checkpointing:  # recompute each decoder layer in backward: memory for FLOPs
            with warnings.catch_warnings():  # renamed in transformers 5.2x; the old name works on 5.17 and later
                warnings.simplefilter("ignore", FutureWarning)
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            # transformers also hooks every input embedding (the ViT's patch embed too) to require grad, which is
            # for PEFT with reentrant checkpointing; here it put the frozen ViT in the graph (recomputed and
            # back-propagated: 1.8x the update time of a 3B on an H200). Non-reentrant checkpointing needs no hook.
            model.disable_input_require_grads()
        self.config = model.config
        self.pad_id = model.config.text_config.pad_token_id or 0
        self.policy = fsdp.shard_model(PolicyScorer(model), self.device, mixed_precision=mp)
        self.ref = None
        if algo.kl_coef > 0:
            self.ref = fsdp.shard_model(PolicyScorer(load(ref_path or model_path).requires_grad_(False)), self.device,
                                        mixed_precision=mp)
            self.ref.eval()
        # A frozen ViT is the same in the policy and the reference (both start from the stage's model): its
        # features are computed once per micro-batch and fed to both, instead of one ViT forward each.
        self.share_vision = self.ref is not None and freeze_vision and self._same_vision()
        # PPO epochs > 1 revisit every micro-batch: a frozen ViT's features are then computed once, not per epoch
        self.reuse_vision = freeze_vision and self.ref is None and learner.ppo_epochs > 1
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=learner.lr, betas=tuple(learner.betas),
                                     weight_decay=learner.weight_decay)
        self.step = 0

    # -- inputs ---------------------------------------------------------------------------------------------
    def _batch(self, samples: list[TrainSample]) -> dict:
        seqs = [SeqInput(s.token_ids.tolist(), [VideoInput(np.asarray(self.resolve(v.frames)), v.second_per_grid)
                                                for v in s.videos]) for s in samples]
        batch = collate(seqs, self.config, self.pad_id, left_pad=False, device=self.device)
        L = batch["input_ids"].shape[1]
        mask = torch.zeros((len(samples), L), dtype=torch.long)
        old = torch.zeros((len(samples), L), dtype=torch.float32)
        for b, s in enumerate(samples):
            mask[b, :len(s.loss_mask)] = torch.from_numpy(s.loss_mask.astype(np.int64))
            old[b, :len(s.logprobs)] = torch.from_numpy(s.logprobs)
        batch["score_mask"] = mask.to(self.device)
        sel = mask.bool()
        batch["rollout_logprobs"] = old[sel].to(self.device)
        counts = mask.sum(1)
        batch["adv"] = torch.repeat_interleave(torch.tensor([s.advantage for s in samples]), counts).to(self.device)
        batch["w"] = torch.repeat_interleave(torch.tensor([s.weight for s in samples]), counts).to(self.device)
        return batch

    def _micro_batches(self, samples: list[TrainSample]) -> list[list[TrainSample]]:
        """Fixed-size micro-batches, or dynamic ones by token budget; with several ranks every rank runs the
        same number (zero-weight fillers appended), since each forward/backward holds FSDP collectives."""
        if self.cfg.max_tokens_per_micro_batch <= 0:
            return micro_batches(samples, self.cfg.micro_batch_size)
        mbs = token_budget_batches(samples, self.cfg.max_tokens_per_micro_batch)
        if dist.is_initialized() and dist.get_world_size() > 1:
            n = torch.tensor([len(mbs)], device=self.device)
            dist.all_reduce(n, op=dist.ReduceOp.MAX)
            mbs = pad_micro_batches(mbs, int(n.item()))
        return mbs

    @torch.no_grad()
    def _same_vision(self) -> bool:
        """Collective: are the policy's and the reference's ViT weights identical (on every rank's shards)?"""
        pairs = zip(self.policy.model.model.visual.parameters(), self.ref.model.model.visual.parameters())
        local = lambda t: t.to_local() if hasattr(t, "to_local") else t  # noqa: E731 (FSDP2 shards are DTensors)
        same = all(torch.equal(local(a), local(b)) for a, b in pairs)
        flag = torch.tensor([float(same)], device=self.device)
        if dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def _inputs(self, mb: list[TrainSample]) -> dict:
        """Model inputs of one micro-batch. Where a frozen ViT's output serves more than one forward (the KL
        reference, later PPO epochs), it is computed here once, without grad, and replaces the pixels."""
        batch = self._batch(mb)
        if (self.share_vision or self.reuse_vision) and "pixel_values_videos" in batch:
            with torch.no_grad():
                batch["video_embeds"] = self.policy(**model_kwargs(batch), video_only=True)
            del batch["pixel_values_videos"]
        return batch

    def _score(self, module, batch, with_entropy=False):
        return module(**model_kwargs(batch), score_mask=batch["score_mask"], with_entropy=with_entropy)

    # -- scoring --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def logprobs(self, samples: list[TrainSample]) -> list[np.ndarray]:
        """Learner log-probs of each sample's loss-masked tokens (for parity checks and old-logprob recompute)."""
        mbs = self._micro_batches(samples)
        where = {id(s): i for i, s in enumerate(s for mb in mbs for s in mb)}  # micro-batches may reorder
        out = self._logprobs_of(self._inputs(mb) for mb in mbs)
        return [out[where[id(s)]] for s in samples]  # fillers dropped

    @torch.no_grad()
    def _logprobs_of(self, batches: Iterable[dict]) -> list[np.ndarray]:
        self.policy.eval()
        out = []
        for batch in batches:
            lp, _ = self._score(self.policy, batch)
            counts = batch["score_mask"].sum(1).tolist()
            out += [x.float().cpu().numpy() for x in torch.split(lp, counts)]
        return out

    # -- updates --------------------------------------------------------------------------------------------
    def policy_update(self, samples: list[TrainSample]) -> dict:
        """PPO-clip (+dual clip) + k3 KL, token-mean per micro-batch / #micro-batches (verl semantics)."""
        mbs = self._micro_batches(samples)
        epochs = self.cfg.ppo_epochs
        # with several epochs the inputs (token tensors, ViT features) are built once and kept for all of them
        kept = [self._inputs(mb) for mb in mbs] if epochs > 1 else None
        old_lp = self._logprobs_of(kept) if epochs > 1 else None
        metrics: dict[str, list[float]] = {}
        for _ in range(epochs):
            self.policy.train()
            self.opt.zero_grad(set_to_none=True)
            offset = 0
            for i, mb in enumerate(mbs):
                batch = kept[i] if kept is not None else self._inputs(mb)
                logp, entropy = self._score(self.policy, batch, with_entropy=bool(self.algo.entropy_coef))
                if old_lp is None:  # one update per rollout batch: exactly on-policy, ratio 1 (as verl 0.4)
                    old = logp.detach()
                else:
                    old = torch.from_numpy(np.concatenate(old_lp[offset:offset + len(mb)])).to(logp.device)
                offset += len(mb)
                mask = batch["w"]  # filler samples weigh 0
                pg, pg_m = policy_loss(logp, old, batch["adv"], mask, self.algo.clip_low, self.algo.clip_high,
                                       self.algo.clip_c)
                kl = ent = None
                if self.ref is not None:
                    with torch.no_grad():
                        ref_lp, _ = self._score(self.ref, batch)
                    kl = kl_k3(logp, ref_lp, mask)
                    _add(metrics, "kl", kl)
                if entropy is not None:
                    ent = masked_mean(entropy, mask)
                    _add(metrics, "entropy", ent)
                loss = total_loss(pg, self.algo, kl, ent)
                (loss / len(mbs)).backward()
                _add(metrics, "pg_loss", pg)
                for k, v in pg_m.items():
                    _add(metrics, k, v)
                diff = (logp.detach() - batch["rollout_logprobs"]).abs()
                _add(metrics, "rollout_logprob_diff_mean", diff.mean() if diff.numel() else torch.tensor(0.0))
                _add(metrics, "tokens", float((batch["w"] > 0).sum()))  # fillers excluded
            metrics.setdefault("grad_norm", []).append(self._optimizer_step())
        return {k: float(np.mean(v)) if k != "tokens" else float(np.sum(v)) for k, v in metrics.items()}

    def sft_update(self, samples: list[TrainSample]) -> dict:
        """Cross-entropy on loss-masked (assistant) tokens, summed then divided by their count."""
        self.policy.train()
        self.opt.zero_grad(set_to_none=True)
        mbs = self._micro_batches(samples)
        total_tokens = sum(float((s.loss_mask > 0).sum()) * s.weight for s in samples)
        loss_sum = 0.0
        for mb in mbs:
            batch = self._batch(mb)
            logp, _ = self._score(self.policy, batch)
            loss = -(logp * batch["w"]).sum() / max(total_tokens, 1.0)
            loss.backward()
            loss_sum += float(loss.detach())
        return {"sft_loss": loss_sum, "tokens": total_tokens, "grad_norm": self._optimizer_step()}

    @torch.no_grad()
    def reset_reference(self) -> None:
        """The KL anchor becomes the current policy (an RL stage's reference is its starting checkpoint).
        Both models are sharded the same way, so each rank copies its own shards."""
        if self.ref is None:
            return
        for r, p in zip(self.ref.parameters(), self.policy.parameters()):
            r.copy_(p)

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def _optimizer_step(self) -> float:
        norm = torch.nn.utils.clip_grad_norm_([p for p in self.policy.parameters() if p.requires_grad],
                                              self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return fsdp.grad_norm_value(norm)

    # -- weights and checkpoints ----------------------------------------------------------------------------
    def full_state(self) -> dict[str, torch.Tensor]:
        """Collective. HF parameter names; the tied LM head is dropped when embeddings are tied."""
        state = fsdp.full_state_dict(self.policy)
        return {n: v for k, v in state.items() if (n := self._hf_name(k))}

    def iter_full_weights(self, dtype: torch.dtype | None = None):
        """Collective generator: (HF name, full tensor on this rank's device) one parameter at a time, for the
        GPU-to-GPU sync paths (same process, or NCCL broadcast)."""
        for k, v in fsdp.iter_full_tensors(self.policy, dtype):
            if n := self._hf_name(k):
                yield n, v

    def weight_specs(self, dtype: torch.dtype | None = None) -> list[tuple[str, torch.dtype, tuple]]:
        """(HF name, dtype sent, full shape) in `iter_full_weights` order: the plan receivers allocate from."""
        return [(n, dtype or v.dtype, tuple(v.shape)) for k, v in self.policy.state_dict().items()
                if (n := self._hf_name(k))]

    def _hf_name(self, key: str) -> str | None:
        """PolicyScorer key -> HF parameter name; None for the LM head when it is tied to the embeddings."""
        name = key.removeprefix("model.")
        if name == "lm_head.weight" and getattr(self.config, "tie_word_embeddings", False):
            return None
        return name

    def optimizer_state(self) -> dict:
        """Collective. This rank's shard of the optimizer state (DTensors), for torch.distributed.checkpoint."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(self.policy, self.opt)

    def load_optimizer_state(self, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(self.policy, self.opt, state)

    def save_hf(self, out_dir: str, replace: bool = True) -> str | None:
        """Collective. Rank 0 writes a normal HF folder (config, safetensors shards + index, tokenizer) loadable
        by `from_pretrained` and vLLM; with `replace`, through a temporary folder renamed into place."""
        from huggingface_hub import save_torch_state_dict

        state = self.full_state()
        if dist.get_rank() != 0:
            return None
        tmp = out_dir.rstrip("/") + ".tmp" if replace else out_dir
        if replace:
            shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp, exist_ok=True)
        for name in os.listdir(self.model_path):  # config, tokenizer, processor files
            if not name.endswith((".safetensors", ".bin")) and name != "model.safetensors.index.json":
                src = os.path.join(self.model_path, name)
                if os.path.isfile(src):
                    shutil.copy2(src, tmp)
        save_torch_state_dict(state, tmp, max_shard_size=self.cfg.save_shard_mb * 2**20, metadata={"format": "pt"})
        if replace:
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(tmp, out_dir)
        return out_dir


def _add(metrics: dict, key: str, value) -> None:
    metrics.setdefault(key, []).append(float(value.detach()) if isinstance(value, torch.Tensor) else float(value))
