"""Demonstration datasets (DESIGN.md §5): ``.npz`` with observations, actions, episode starts
and a metadata JSON string. Saved atomically and loaded with ``allow_pickle=False``, so a file
received from someone else can never run code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pidog_description.spec import (
    ACTION_DIM,
    OBS_SLICES,
    ObservationLayout,
    filter_action,
    layout_for_dim,
    layout_for_version,
    observation_layout,
    sanitize_action,
    unfilter_action,
)

from .atomic import atomic_output


def relabel_for_filter(
    observations: np.ndarray, actions: np.ndarray, from_alpha: float, to_alpha: float
) -> tuple[np.ndarray, int]:
    """BC labels for a student behind an action filter of ``to_alpha`` from actions executed
    behind one of ``from_alpha`` (a trained expert's own filter; 0 for recorded targets, which
    were executed as they are): the action whose filtering, from the same previous executed
    action (each observation's last action), executes what was executed, so the student's robot
    does what the demonstrator's did. Returns the labels (float32, clipped to [-1, 1]) and how
    many samples needed clipping (the filter cannot follow that fast)."""
    previous = observations[:, OBS_SLICES["last_action"]].astype(np.float64)
    executed = filter_action(previous, sanitize_action(actions), from_alpha)
    wanted = unfilter_action(previous, executed, to_alpha)
    clipped = int(np.any(np.abs(wanted) > 1.0 + 1e-6, axis=1).sum())
    return sanitize_action(wanted).astype(np.float32), clipped


# Metadata key: the action filter (Hz, 0: none) a set's labels are for. Sets written before it
# was recorded lack it and are not checked.
LABELS_FILTER_KEY = "action_filter_hz"


class DemonstrationError(ValueError):
    """A demonstrations file that is missing, malformed or for another observation layout."""


@dataclass
class Demonstrations:
    observations: np.ndarray  # (N, layout.dim) float32
    actions: np.ndarray  # (N, ACTION_DIM) float32, in [-1, 1]
    episode_starts: np.ndarray  # (N,) bool, True at the first sample of each episode
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A copy: the layout is written into it below, and a caller building a second set from
        # the same dict (observations of another width, say) must not inherit this one's.
        self.metadata = dict(self.metadata)
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.episode_starts = np.asarray(self.episode_starts, dtype=bool)
        n = len(self.observations)
        if self.observations.ndim != 2:
            raise DemonstrationError(f"observations must have shape (N, dim), got {self.observations.shape}")
        # The layout the metadata names, else the one of the observations' width.
        try:
            if "obs_layout_version" in self.metadata:
                layout = layout_for_version(self.metadata["obs_layout_version"])
            else:
                layout = layout_for_dim(self.observations.shape[1])
        except ValueError as exc:
            raise DemonstrationError(str(exc)) from None
        if self.observations.shape[1] != layout.dim:
            raise DemonstrationError(
                f"observations of layout {layout.version!r} must have shape (N, {layout.dim}), "
                f"got {self.observations.shape}"
            )
        if self.actions.shape != (n, ACTION_DIM):
            raise DemonstrationError(f"actions must have shape ({n}, {ACTION_DIM}), got {self.actions.shape}")
        if self.episode_starts.shape != (n,):
            raise DemonstrationError(
                f"episode_starts must have shape ({n},), got {self.episode_starts.shape}"
            )
        if n and not self.episode_starts[0]:
            raise DemonstrationError("episode_starts[0] must be True")
        if not (np.all(np.isfinite(self.observations)) and np.all(np.isfinite(self.actions))):
            raise DemonstrationError("observations and actions must be finite")
        self.metadata["obs_layout_version"] = layout.version

    @property
    def layout(self) -> ObservationLayout:
        return layout_for_version(self.metadata["obs_layout_version"])

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def n_episodes(self) -> int:
        return int(self.episode_starts.sum())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file + rename) so a crash never leaves a half-written file."""
        path = Path(path)
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                observations=self.observations,
                actions=self.actions,
                episode_starts=self.episode_starts,
                metadata=np.array(json.dumps(self.metadata)),
            )
        return path

    @property
    def action_filter_hz(self) -> float | None:
        """The action filter the labels are for (sim config ``env.action_filter_hz``; 0: none),
        None for a file written before sets recorded it."""
        value = self.metadata.get(LABELS_FILTER_KEY)
        return None if value is None else float(value)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        layout: ObservationLayout | None = None,
        action_filter_hz: float | None = None,
    ) -> Demonstrations:
        """Read a file written by ``save``; ``layout``: the one the caller trains on (default
        ``pidog-obs-v1``), refused by name if the file holds another. ``action_filter_hz``: the
        action filter the caller trains behind; a file labelled for another is refused (its
        labels would tell that robot other targets than the demonstrator executed)."""
        path = Path(path)
        if not path.is_file():
            raise DemonstrationError(f"demonstrations file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"observations", "actions", "episode_starts", "metadata"} - set(data.files)
                if missing:
                    raise DemonstrationError(f"{path} lacks arrays {sorted(missing)}")
                meta = json.loads(str(data["metadata"]))
                demos = cls(data["observations"], data["actions"], data["episode_starts"], meta)
        except DemonstrationError:
            raise
        except Exception as exc:  # zipfile/ValueError/JSON errors: all mean "not a demonstrations file"
            raise DemonstrationError(f"cannot read demonstrations from {path}: {exc}") from exc
        want = layout or observation_layout()
        if demos.layout is not want:
            raise DemonstrationError(
                f"{path} was recorded with observation layout {demos.layout.version!r}; this run uses "
                f"{want.version!r} (sim config env.obs_history)"
            )
        labelled = demos.action_filter_hz
        if action_filter_hz is not None and labelled is not None and abs(labelled - action_filter_hz) > 1e-9:
            raise DemonstrationError(
                f"{path} is labelled for a {labelled:g} Hz action filter; this run acts behind "
                f"{action_filter_hz:g} Hz (sim config env.action_filter_hz; 0: none): import or record "
                "it again for this run's filter (pidog-import-bag --action-filter-hz)"
            )
        return demos

    @classmethod
    def concatenate(
        cls, parts: list[Demonstrations], metadata: dict[str, Any] | None = None
    ) -> Demonstrations:
        if not parts:
            raise DemonstrationError("no demonstrations to concatenate")
        return cls(
            np.concatenate([p.observations for p in parts]),
            np.concatenate([p.actions for p in parts]),
            np.concatenate([p.episode_starts for p in parts]),
            metadata or dict(parts[0].metadata),
        )
