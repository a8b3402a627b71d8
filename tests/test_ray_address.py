"""--ray-address without a cluster there: a clear error (no Ray instance runs in this module)."""

import pytest
from pool_handlers import Squarer

from worldmodels.workers import WorkerError, open_pool

ray = pytest.importorskip("ray")


def test_joining_a_cluster_that_is_not_there_says_how_to_start_one(monkeypatch, ray_to_itself):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    with pytest.raises(WorkerError, match=r"--ray-address auto: no Ray cluster.*ray start --head"):
        open_pool("ray", Squarer, 1, 10.0, ray_address="auto")
