"""The observability benchmark's measure: held-out R^2 finds a signal that is there and no
signal where there is none."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_observability import SETTLE_STEPS, WINDOW_STRIDE, held_out_r2, window_features


def _signals(rng: np.random.Generator, target: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """A per-robot constant hidden in noise ("hint": its std over time is the target), and a
    signal that knows nothing of it ("noise")."""
    robots = len(target)
    hint = rng.normal(size=(steps, robots, 2)) * np.exp(target)[None, :, None]
    return {"hint": hint.astype(np.float32), "noise": rng.normal(size=(steps, robots, 3)).astype(np.float32)}


def test_a_windowed_statistic_is_found_and_noise_is_not() -> None:
    rng = np.random.default_rng(3)
    target = rng.uniform(-0.5, 0.5, size=32)
    steps = SETTLE_STEPS + 25 * WINDOW_STRIDE
    signals = _signals(rng, target, steps)
    train, test = np.arange(24), np.arange(24, 32)

    def r2(names: tuple[str, ...], window: int) -> float:
        x_train = window_features(signals, names, window, train)
        x_test = window_features(signals, names, window, test)
        assert x_train.shape[0] == 25 * len(train)  # window ends x robots
        y_train = np.tile(target[train], len(x_train) // len(train))
        y_test = np.tile(target[test], len(x_test) // len(test))
        return held_out_r2(x_train, y_train, x_test, y_test)

    # The spread of the hint over a 50-step window gives the target away; one frame hardly does.
    assert r2(("hint",), 50) > 0.8
    assert r2(("hint",), 1) < 0.5
    assert r2(("noise",), 50) < 0.2
