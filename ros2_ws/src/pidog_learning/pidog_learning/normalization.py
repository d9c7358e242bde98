"""The observation normaliser, kept inside the policy network.

It is an SB3 features extractor holding the mean/std as buffers: the buffers travel in every
``state_dict`` (BC weights, PPO checkpoints), so BC and PPO use the very same normaliser and the
exported ONNX graph contains it. Nothing outside the policy (no VecNormalize) has to be copied.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from pidog_description.spec import OBS_DIM, layout_for_dim

NORM_CLIP: float = 10.0
"""Normalised observations are clipped to +-NORM_CLIP: an unseen extreme input stays bounded."""
MIN_STD: float = 1e-3
"""Features varying less than this in the data (e.g. a fixed command) are centred, not scaled."""
IMAGE_FEATURES: int = 64


def observation_stats(observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of (N, dim) observations of one layout; constant features get std 1."""
    obs = np.asarray(observations, dtype=np.float64)
    if obs.ndim != 2 or len(obs) == 0:
        raise ValueError(f"observations must have shape (N>0, dim), got {obs.shape}")
    layout_for_dim(obs.shape[1])  # a width no layout has is an error, named
    mean = obs.mean(axis=0)
    std = obs.std(axis=0)
    std = np.where(std < MIN_STD, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


class ObservationNormalizer(nn.Module):
    """(obs - mean) / std, clipped. Identity until ``set_stats`` is called."""

    mean: torch.Tensor  # buffers (register_buffer)
    std: torch.Tensor

    def __init__(self, dim: int = OBS_DIM) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32))
        if mean_t.shape != self.mean.shape or std_t.shape != self.std.shape:
            raise ValueError(f"normaliser stats must have shape {tuple(self.mean.shape)}")
        if not torch.all(std_t > 0):
            raise ValueError("normaliser std must be positive")
        self.mean.copy_(mean_t)
        self.std.copy_(std_t)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp((obs - self.mean) / self.std, -NORM_CLIP, NORM_CLIP)


class RunningNormalizer(nn.Module):
    """Normalises with running mean/std updated from training minibatches (critic inputs).

    The privileged inputs of an asymmetric critic have no demonstrations to take stats from
    (they exist only in simulation), so their scale is learned as PPO trains. Buffers: they
    travel in every state_dict and checkpoint.
    """

    mean: torch.Tensor  # buffers (register_buffer)
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and len(x) > 1:
            with torch.no_grad():  # Chan et al.'s parallel update of mean and variance
                n = torch.tensor(float(len(x)))
                batch_mean, batch_var = x.mean(dim=0), x.var(dim=0, unbiased=False)
                total = self.count + n
                delta = batch_mean - self.mean
                self.mean += delta * n / total
                self.var.copy_(
                    (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
                )
                self.count.copy_(total)
        return torch.clamp((x - self.mean) / torch.sqrt(self.var + 1e-8), -NORM_CLIP, NORM_CLIP)


class NormalizedStateExtractor(BaseFeaturesExtractor):
    """Features = the normalised 26-value observation (the MLPs do the rest).

    With ``privileged_dim`` > 0 the observation carries that many sim-only values after the
    deployable ones; they are appended (normalised) to the features for the critic, and
    ``actor_features`` leaves them out, so the actor never depends on them.
    """

    def __init__(self, observation_space: spaces.Box, privileged_dim: int = 0) -> None:
        total = int(observation_space.shape[0])
        super().__init__(observation_space, features_dim=total)
        self.state_dim = total - privileged_dim
        self.actor_dim = self.state_dim
        self.normalizer = ObservationNormalizer(self.state_dim)
        self.privileged_normalizer = RunningNormalizer(privileged_dim) if privileged_dim else None

    def actor_features(self, observations: torch.Tensor) -> torch.Tensor:
        return self.normalizer(observations[:, : self.state_dim])

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        features = self.actor_features(observations)
        if self.privileged_normalizer is None:
            return features
        return torch.cat([features, self.privileged_normalizer(observations[:, self.state_dim :])], dim=1)


class StateImageExtractor(BaseFeaturesExtractor):
    """--use-camera: normalised state plus a small CNN on the head-camera image.

    The image features enter through a learnable gate initialised at zero (as in ReZero /
    ControlNet): at first the policy is exactly the state-only policy, so BC on state-only
    demonstrations (bags and trot demos carry no images) transfers unchanged, and PPO opens
    the gate where the image helps. Privileged values (``privileged_dim``) ride at the end of
    the state vector, as in ``NormalizedStateExtractor``.
    """

    def __init__(self, observation_space: spaces.Dict, privileged_dim: int = 0) -> None:
        total = int(cast(spaces.Box, observation_space["state"]).shape[0])
        super().__init__(observation_space, features_dim=total + IMAGE_FEATURES)
        self.state_dim = total - privileged_dim
        self.actor_dim = self.state_dim + IMAGE_FEATURES
        image_space = cast(spaces.Box, observation_space["image"])
        channels = int(image_space.shape[0])  # channel-first (VecTransposeImage)
        self.normalizer = ObservationNormalizer(self.state_dim)
        self.privileged_normalizer = RunningNormalizer(privileged_dim) if privileged_dim else None
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, *image_space.shape)).shape[1]
        self.image_head = nn.Sequential(nn.Linear(n_flat, IMAGE_FEATURES), nn.ReLU())
        self.image_gate = nn.Parameter(torch.zeros(IMAGE_FEATURES))

    def actor_features(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self.image_head(self.cnn(observations["image"]))  # already scaled to [0, 1] by SB3
        state = observations["state"][:, : self.state_dim]
        return torch.cat([self.normalizer(state), self.image_gate * image], dim=1)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        features = self.actor_features(observations)
        if self.privileged_normalizer is None:
            return features
        privileged = self.privileged_normalizer(observations["state"][:, self.state_dim :])
        return torch.cat([features, privileged], dim=1)
