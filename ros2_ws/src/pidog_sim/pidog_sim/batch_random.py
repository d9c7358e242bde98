"""One independent random stream per simulated robot, drawn for the whole batch at once.

Why not one ``np.random.Generator`` per robot: drawing from N generators is a per-robot Python
loop in the hot path. Why not one generator for the batch: robot i's noise would then depend
on how many robots share its batch, and a batch of N would not reproduce a batch of one.

So each robot owns a 64-bit counter and every draw is SplitMix64 of (counter, robot key),
evaluated over the batch with numpy integer arithmetic (which wraps modulo 2**64, exactly what
SplitMix64 wants). Robot i's stream depends on its seed alone.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / float(1 << 53)


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


class BatchRandom:
    """Per-robot random streams; every draw takes the robots to draw for (an index array)."""

    def __init__(self, n: int) -> None:
        self.key = np.zeros(n, dtype=np.uint64)
        self.counter = np.zeros(n, dtype=np.uint64)

    def seed(self, robots: np.ndarray, seeds: np.ndarray) -> None:
        """Restart the streams of ``robots`` from integer ``seeds`` (any non-negative ints)."""
        seeds = np.asarray(seeds).astype(np.uint64)
        with np.errstate(over="ignore"):
            self.key[robots] = _splitmix(seeds * _GOLDEN + np.uint64(1))
        self.counter[robots] = 0

    def _bits(self, robots: np.ndarray, k: int) -> np.ndarray:
        """(len(robots), k) uint64 draws; advances those robots' counters by k."""
        steps = np.arange(1, k + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = (self.counter[robots, None] + steps) * _GOLDEN + self.key[robots, None]
            self.counter[robots] += np.uint64(k)
            return _splitmix(z)

    def uniform(
        self, robots: np.ndarray, low: float | np.ndarray = 0.0, high: float | np.ndarray = 1.0, k: int = 1
    ):
        """(len(robots), k) uniform draws in [low, high)."""
        u = (self._bits(robots, k) >> np.uint64(11)).astype(np.float64) * _TO_UNIT
        return low + (np.asarray(high) - low) * u

    def normal(self, robots: np.ndarray, std: float | np.ndarray = 1.0, k: int = 1) -> np.ndarray:
        """(len(robots), k) zero-mean normal draws (Box-Muller); ``std`` per robot (column) or scalar."""
        u = self.uniform(robots, k=2 * k)
        radius = np.sqrt(-2.0 * np.log1p(-u[:, :k]))  # 1 - u in (0, 1]: log never sees 0
        return np.asarray(std) * radius * np.cos(2.0 * np.pi * u[:, k:])

    def integers(self, robots: np.ndarray, low: int, high_inclusive: int) -> np.ndarray:
        """One integer per robot in [low, high_inclusive]."""
        span = high_inclusive - low + 1
        return low + np.minimum((self.uniform(robots)[:, 0] * span).astype(np.int64), span - 1)
