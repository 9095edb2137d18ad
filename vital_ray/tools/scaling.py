"""Tool-pool autoscaling policy (pure functions; `actors.tools.ToolPool` applies them).

- size: enough workers for the outstanding calls (`scale_up_queue` per worker), within [min_workers, max_workers];
  shrink only after the pool has been larger than needed for `idle_s_before_shrink`
- placement: prefer nodes labelled `vital-ray/node-kind=<tool_node_label>` (the CPU tool group of the manifests in
  cluster/), fall back to any node, so a cluster without tool nodes (a laptop, CI) still runs
- cluster demand: one CPU bundle per wanted worker, with the same label selector, for
  `ray.autoscaler.sdk.request_resources` (the autoscaler adds tool nodes; v2 honours the label selector)
"""

from __future__ import annotations

import math

from vital_ray.config import ToolPoolConfig

NODE_KIND_LABEL = "vital-ray/node-kind"


def needed_workers(outstanding: int, cfg: ToolPoolConfig) -> int:
    """Workers wanted for `outstanding` calls (waiting + running), clamped to [min_workers, max_workers]."""
    want = math.ceil(max(outstanding, 0) / cfg.scale_up_queue)
    return max(cfg.min_workers, min(cfg.max_workers, want))


def shrink_due(over_since: float | None, now: float, cfg: ToolPoolConfig) -> bool:
    """True once the pool has been larger than needed for `idle_s_before_shrink` without a break."""
    return over_since is not None and now - over_since >= cfg.idle_s_before_shrink


def placement_options(cfg: ToolPoolConfig) -> dict:
    """Actor options: soft preference for tool nodes (Ray label selector + an unconstrained fallback)."""
    if not cfg.tool_node_label:
        return {}
    return {"label_selector": {NODE_KIND_LABEL: cfg.tool_node_label}, "fallback_strategy": [{"label_selector": {}}]}


def resource_request(workers: int, cfg: ToolPoolConfig) -> dict:
    """kwargs for `request_resources`: one bundle per worker, shaped like the actor."""
    bundles = [{"CPU": cfg.num_cpus_per_worker}] * workers
    out: dict = {"bundles": bundles}
    if cfg.tool_node_label:
        out["bundle_label_selectors"] = [{NODE_KIND_LABEL: cfg.tool_node_label}] * workers
    return out
