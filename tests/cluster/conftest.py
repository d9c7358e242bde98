"""tests/cluster: a real two-node Ray cluster on loopback per test module (cluster_helpers.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import LoopbackCluster, free_port


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    pytest.importorskip("ray", reason="requirements/ray.txt is not installed")
    # Short root: Ray's unix socket paths live under it (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="pdray"))
    c = LoopbackCluster(port=free_port(), root=root)
    try:
        c.start_head()
        c.start_worker()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
