"""GPU pools on a two-node Ray cluster whose GPUs are faked (CPU machine; `num_gpus` is only a resource here):
rollout and learner pools are gang-placed on disjoint GPUs, a pool that cannot get GPUs fails at start-up with
a clear error, and the NCCL weight-sync path (its gloo twin on CPU, same code) delivers the learner's weights."""

import asyncio
import os
import signal
import time

import numpy as np
import pytest
import ray

from actors.common import gang_options
from actors.learner import LearnerPool
from actors.rollout import RolloutPool
from vital_ray.batch import TrainSample
from vital_ray.config import AlgoConfig, LearnerConfig, ModelConfig, RolloutConfig
from vital_ray.rollout.engine import SamplingParams
from vital_ray.rollout.trajectory import VideoRef
from vital_ray.training.weights import from_buckets

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def fake_gpu_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1})
    cluster.add_node(num_cpus=2, num_gpus=1)
    ray.init(address=cluster.address, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_pools_get_disjoint_gpus_and_nccl_path_syncs_mock_gpu(fake_gpu_cluster, tiny_model_path):
    model = ModelConfig()
    rollout = RolloutPool(tiny_model_path, RolloutConfig(num_workers=1, num_cpus_per_worker=0.5,
                                                         num_gpus_per_worker=1), model)
    learner = LearnerPool(tiny_model_path, LearnerConfig(num_workers=1, num_cpus_per_worker=0.5, num_gpus_per_worker=1,
                                                         lr=1e-2), AlgoConfig(kl_coef=0.0), model)
    places = rollout.placements() + learner.placements()
    pairs = [(p["node"], g) for p in places for g in p["gpus"]]
    assert all(len(p["gpus"]) == 1 for p in places)
    assert len(pairs) == 2 and len(set(pairs)) == 2  # two pools, two different (node, GPU) pairs
    assert len({p["node"] for p in places}) == 2  # one GPU per node: the pools had to go to both nodes

    with pytest.raises(RuntimeError, match="placement group of rollout pool"):  # every GPU is taken
        gang_options(1, 0.5, 1, "rollout pool", timeout_s=5)

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    frames = ray.put(np.random.default_rng(0).integers(0, 255, (2, 56, 56, 3), dtype=np.uint8))
    ids = tok.encode("<|im_start|>user\n<|vision_start|>") + [tok.convert_tokens_to_ids("<|video_pad|>")] * 4 \
        + tok.encode("<|vision_end|>q<|im_end|>\n<|im_start|>assistant\n<answer>A</answer>")
    mask = np.zeros(len(ids), np.int8)
    mask[-6:] = 1
    clip = VideoRef(frames, (2, 56, 56, 3), 2.0, 0.0, 1.0)
    learner.policy_update([TrainSample(np.asarray(ids), mask, np.zeros(len(ids), np.float32), [clip], 1.0)])
    m = learner.sync_nccl(rollout, 1, "float32")
    assert m["sync/mb"] > 1 and m["sync/load_s"] > 0
    entries, refs, _ = learner.push_weights()
    want = {k: float(v.double().sum()) for k, v in from_buckets(entries, ray.get(refs)).items()}
    got = ray.get(rollout.workers[0].weights_checksum.remote())
    assert want and all(abs(got[k] - v) <= 1e-6 * max(1.0, abs(v)) for k, v in want.items())
    assert ray.get(rollout.workers[0].ready.remote()) == 1
    assert m["sync/regrouped"] == 1.0

    # The NCCL path keeps no copy of the weights: a rollout worker that restarts gets the learner's through
    # `weight_source`, and the next sync forms a new group (the old one has a dead member).
    def checksums_match():
        entries, refs, _ = learner.push_weights()
        want = {k: float(v.double().sum()) for k, v in from_buckets(entries, ray.get(refs)).items()}
        got = ray.get(rollout.workers[0].weights_checksum.remote())
        return all(abs(got[k] - v) <= 1e-6 * max(1.0, abs(v)) for k, v in want.items())

    rollout.weight_source = lambda: (*learner.push_weights()[:2], rollout.version)
    os.kill(ray.get(rollout.workers[0].__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
    time.sleep(2)
    req = {"key": "k", "token_ids": ids[:-6], "videos": [(frames, 1.0)], "max_new_tokens": 2}
    out = asyncio.run(rollout.generate([req], SamplingParams(temperature=0.0)))
    assert rollout.restarts == 1 and len(out[0].token_ids) == 2
    assert ray.get(rollout.workers[0].ready.remote()) == 1 and checksums_match()
    learner.policy_update([TrainSample(np.asarray(ids), mask, np.zeros(len(ids), np.float32), [clip], -1.0)])
    assert not checksums_match()
    m = learner.sync_nccl(rollout, 2, "float32")
    assert m["sync/regrouped"] == 1.0 and checksums_match()
    assert learner.sync_nccl(rollout, 3, "float32")["sync/regrouped"] == 0.0
    rollout.shutdown()
    learner.shutdown()
    opts, pg = gang_options(2, 0.5, 1, "pool after shutdown", timeout_s=60)  # both GPUs were given back
    assert len(opts) == 2
    ray.util.remove_placement_group(pg)

