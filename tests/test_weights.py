"""Weight-sync buckets: round trip, bf16 bit-exactness, bucket size limit."""

import torch

from vital_ray.training.weights import from_buckets, to_buckets


def test_bucket_round_trip_is_exact_for_fp32_and_bf16():
    g = torch.Generator().manual_seed(0)
    state = {"a": torch.randn(300, 200, generator=g), "b": torch.randn(7, generator=g).to(torch.bfloat16),
             "c": torch.arange(12, dtype=torch.float32).view(3, 4)}
    entries, buckets = to_buckets(state, bucket_mb=1)
    back = from_buckets(entries, buckets)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k


def test_buckets_respect_the_size_limit():
    state = {f"w{i}": torch.zeros(2**18) for i in range(8)}  # 1 MiB each
    entries, buckets = to_buckets(state, bucket_mb=2)
    assert len(buckets) == 4
    assert all(b.nbytes <= 2 * 2**20 for b in buckets)
    assert {e.bucket for e in entries} == {0, 1, 2, 3}
