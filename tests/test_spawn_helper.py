"""tests/spawn.py: a spawned rank that dies is reported at once, with its exit code and last output."""

import os
import sys

import pytest

from tests.spawn import spawn_ranks


def _dies(rank, q):
    print(f"rank {rank} is about to fail: bad shard", file=sys.stderr, flush=True)
    os._exit(3)


def _reports(rank, scale, q):
    q.put((rank, rank * scale))


def _exits_silently(rank, q):
    pass


@pytest.mark.timeout(120)  # the queue timeout below is an hour: only noticing the dead child passes in time
def test_dead_child_fails_at_once_with_code_and_output():
    with pytest.raises(AssertionError, match=r"(?s)rank 0 exited with code 3.*bad shard"):
        spawn_ranks(_dies, 1, timeout=3600)


@pytest.mark.timeout(120)
def test_child_that_exits_without_reporting_is_named():
    with pytest.raises(AssertionError, match=r"ranks \[0, 1\] exited with code 0 without reporting"):
        spawn_ranks(_exits_silently, 2, timeout=3600)


def test_results_by_rank():
    assert spawn_ranks(_reports, 3, (10,)) == {0: 0, 1: 10, 2: 20}
