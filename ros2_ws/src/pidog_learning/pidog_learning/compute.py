"""How many CPU threads torch uses, phase by phase.

While the batched simulator steps, its physics threads own the cores and the policy's forward
pass runs best on one torch thread; during a learner update (BC epochs, a PPO update) nothing
else runs, so the update gets every core (measured in docs/benchmarks/sim.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from pidog_sim.batch import default_threads


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run the block on ``n`` torch threads (0: every core this process may use); restore after."""
    if n < 0:
        raise ValueError(f"torch thread count must be >= 0 (0: every core), got {n}")
    previous = torch.get_num_threads()
    wanted = n or default_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)
