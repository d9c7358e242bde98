"""The actor-critic network that BC trains, PPO fine-tunes and ONNX exports: one class.

``PiDogPolicy`` is an SB3 ``ActorCriticPolicy`` whose constructor takes only JSON-plain
arguments (layer sizes, an activation *name*), so a PPO checkpoint's ``policy_kwargs`` are
stored as plain JSON and the network can be rebuilt from a checkpoint without unpickling.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn

from pidog_description.spec import ACTION_DIM, ObservationLayout, check_action_filter_hz, observation_layout
from pidog_sim.env import CAMERA_SHAPE
from pidog_sim.task import PRIVILEGED_DIM

from .action_prior import TrotPrior, make_action_prior
from .config import EXPLORATIONS
from .normalization import NormalizedStateExtractor, ObservationNormalizer, StateImageExtractor

ACTIVATION_CLASSES: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
POLICY_FORMAT = "pidog-actor-critic-v1"


class SplitMlpExtractor(nn.Module):
    """SB3's MlpExtractor with different inputs: the actor reads the first ``actor_dim``
    features (the deployable observation), the critic all of them (plus privileged state)."""

    def __init__(
        self, actor_dim: int, critic_dim: int, hidden: list[int], activation: type[nn.Module]
    ) -> None:
        super().__init__()
        self.actor_dim = actor_dim

        def mlp(width: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for size in hidden:
                layers += [nn.Linear(width, size), activation()]
                width = size
            return nn.Sequential(*layers)

        self.policy_net = mlp(actor_dim)
        self.value_net = mlp(critic_dim)
        self.latent_dim_pi = self.latent_dim_vf = hidden[-1] if hidden else 0

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(features[:, : self.actor_dim])

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net(features)


# The optimizer's parameter groups (PiDogPolicy._build): the actor's, frozen in the critic
# warm-up and stepped at FinetunePPO.actor_lr_scale, and the critic's. The log-std has a group
# of its own only in runs with finetune.log_std_lr_scale != 1 (separate_log_std_group).
ACTOR_GROUP, LOG_STD_GROUP, CRITIC_GROUP = "actor", "log_std", "critic"
ACTOR_GROUPS = (ACTOR_GROUP, LOG_STD_GROUP)


class PiDogPolicy(ActorCriticPolicy):
    """Separate actor and critic MLPs on a shared (parameter-free for state) normaliser.

    ``privileged_dim`` > 0 makes the critic asymmetric: the observation then carries that
    many sim-only values after the deployable ones (``pidog_sim.task.PRIVILEGED_LAYOUT``),
    which only the critic reads. ``mean_actions`` (BC, the DAPG term, ONNX export) takes the
    plain deployable observation, so nothing privileged can reach a deployed policy.
    """

    # SB3 builds these from features_extractor_class: always one of ours.
    features_extractor: NormalizedStateExtractor | StateImageExtractor
    pi_features_extractor: NormalizedStateExtractor | StateImageExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        hidden_sizes: list[int] | None = None,
        activation: str = "tanh",
        privileged_dim: int = 0,
        exploration: str = "gaussian",
        obs_history: int = 0,
        action_filter_hz: float = 0.0,
        action_prior: str = "none",
        **kwargs: Any,
    ) -> None:
        if activation not in ACTIVATION_CLASSES:
            raise ValueError(f"activation must be one of {sorted(ACTIVATION_CLASSES)}, got {activation!r}")
        # "gaussian": PPO's noise is independent per joint and step. "gsde": SB3's generalised
        # state-dependent exploration, a random linear map of the actor's last hidden layer
        # redrawn every sde_sample_freq steps, so the noise varies smoothly along the gait.
        if exploration not in EXPLORATIONS:
            raise ValueError(f"exploration must be one of {EXPLORATIONS}, got {exploration!r}")
        self.exploration = exploration
        # Ours, not PPO's use_sde argument, decides: BC and export build this policy without PPO
        # and must get the same log-std shape to load its weights.
        kwargs["use_sde"] = exploration == "gsde"
        hidden = list(hidden_sizes or [256, 256])
        self.hidden_sizes = hidden
        self.privileged_dim = int(privileged_dim)
        # The deployable observation's layout (sim config env.obs_history): what the actor
        # reads, what the ONNX names, what the symmetry loss mirrors.
        self.layout: ObservationLayout = observation_layout(obs_history)
        # The action filter it acts behind (sim config env.action_filter_hz): what the ONNX
        # names, so the policy node and every evaluation run the same one.
        self.action_filter_hz = check_action_filter_hz(action_filter_hz, "env.action_filter_hz")
        # "trot": the mean action is the scripted trot's for the observed command and clock plus
        # the network's output (pidog_learning.action_prior); "none": the network's output.
        self.action_prior = action_prior
        prior = make_action_prior(action_prior)
        extractor = (
            StateImageExtractor if isinstance(observation_space, spaces.Dict) else NormalizedStateExtractor
        )
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch={"pi": hidden, "vf": hidden},
            activation_fn=ACTIVATION_CLASSES[activation],
            features_extractor_class=extractor,
            features_extractor_kwargs={"privileged_dim": self.privileged_dim},
            **kwargs,
        )
        self.prior: TrotPrior | None = prior

    def _build_mlp_extractor(self) -> None:
        if not self.privileged_dim:
            super()._build_mlp_extractor()  # unchanged SB3 layout: old checkpoints still load
            return
        extractor = self.features_extractor
        # SB3 types mlp_extractor as its MlpExtractor; ours has the same interface.
        self.mlp_extractor = SplitMlpExtractor(  # type: ignore[assignment]
            extractor.actor_dim, extractor.features_dim, self.hidden_sizes, self.activation_fn
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        # Two parameter groups so fine-tuning can give the actor a smaller step than the
        # critic (FinetunePPO.actor_lr_scale); same optimizer class and arguments as SB3's.
        actor = list(self.actor_parameters())
        actor_ids = {id(p) for p in actor}
        critic = [p for p in self.parameters() if id(p) not in actor_ids]
        self.optimizer = self.optimizer_class(
            [{"params": actor, "name": ACTOR_GROUP}, {"params": critic, "name": CRITIC_GROUP}],
            lr=lr_schedule(1),  # type: ignore[call-arg]  # SB3 types optimizer_class as the base Optimizer
            **self.optimizer_kwargs,
        )

    def separate_log_std_group(self) -> None:
        """Move the exploration log-std out of the actor's parameter group into one of its own
        (LOG_STD_GROUP), so it can step at its own rate (FinetunePPO.log_std_lr_scale). Before the
        first step: the optimizer holds no state yet."""
        actor = next(g for g in self.optimizer.param_groups if g["name"] == ACTOR_GROUP)
        actor["params"] = [p for p in actor["params"] if p is not self.log_std]
        self.optimizer.add_param_group({"params": [self.log_std], "name": LOG_STD_GROUP})

    @property
    def normalizer(self) -> ObservationNormalizer:
        return self.features_extractor.normalizer

    @property
    def uses_camera(self) -> bool:
        return isinstance(self.observation_space, spaces.Dict)

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        """What decides the action: frozen during critic warm-up, stepped at actor_lr_scale."""
        yield from self.mlp_extractor.policy_net.parameters()
        yield from self.action_net.parameters()
        yield self.log_std
        if self.uses_camera:
            yield from self.features_extractor.parameters()

    def mean_parameters(self) -> list[nn.Parameter]:
        """What BC fits: the actor MLP and its output layer.

        Not the log-std (MSE on the mean says nothing about exploration noise) and not the
        camera branch (demonstrations carry no images: its gate must stay closed).
        """
        return [*self.mlp_extractor.policy_net.parameters(), *self.action_net.parameters()]

    def predict(self, observation: Any, *args: Any, **kwargs: Any) -> tuple[np.ndarray, Any]:
        """SB3's predict; a privileged policy also takes the plain deployable observation (the
        actor ignores the privileged columns, so zeros stand in for them)."""
        if (
            self.privileged_dim
            and isinstance(observation, np.ndarray)
            and observation.shape[-1] == self.layout.dim
        ):
            pad = np.zeros((*observation.shape[:-1], self.privileged_dim), dtype=observation.dtype)
            observation = np.concatenate([observation, pad], axis=-1)
        return super().predict(observation, *args, **kwargs)

    def actor_latent(self, obs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """The actor's last hidden layer from the deployable observation alone (extra
        privileged columns, if given, are ignored)."""
        preprocessed = preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)
        # The extractor matches the observation space: a dict exactly for a camera policy.
        features = self.pi_features_extractor.actor_features(cast(Any, preprocessed))
        return self.mlp_extractor.forward_actor(features)

    def mean_actions(self, obs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """The deterministic action before clipping (the Gaussian mean)."""
        return self._with_prior(self.action_net(self.actor_latent(obs)), obs)

    def _with_prior(self, net_actions: torch.Tensor, obs: Any) -> torch.Tensor:
        """The network's output plus the action prior's action for ``obs`` (if any)."""
        if self.prior is None:
            return net_actions
        states = obs["state"] if isinstance(obs, dict) else obs
        return net_actions + self.prior(states.float())

    @contextmanager
    def cloning_whole_actions(self) -> Iterator[None]:
        """Behavioural cloning of a residual policy: inside, the network alone is the policy
        (the prior is off) and learns the demonstrations' whole action; on leaving, its last
        layer is zeroed and the prior is back, so the policy acts as the prior does and PPO
        starts from hidden layers that encode the gait. Cloning the residual instead (the
        demonstrations are the trot, so the target is zero) only shrinks the last layer
        (norm 0.0008 against 0.81) and teaches the hidden layers nothing: PPO from there kept
        50-54 of issue 14's 60 cells at two seeds, from these features 50-60 at seven (58-60 at
        three; docs/ABLATIONS.md). Without a prior it changes nothing."""
        prior, self.prior = self.prior, None
        try:
            yield
        finally:
            if prior is not None:
                with torch.no_grad():
                    for param in self.action_net.parameters():  # weight and bias
                        param.zero_()
            self.prior = prior

    # SB3's three ways to the action distribution, with the prior added to its mean. Without a
    # prior they are SB3's own, unchanged.
    def _distribution(self, latent_pi: torch.Tensor, obs: Any) -> Distribution:
        mean = self._with_prior(self.action_net(latent_pi), obs)
        if self.use_sde:
            return self.action_dist.proba_distribution(mean, self.log_std, latent_pi)  # type: ignore[call-arg]
        return self.action_dist.proba_distribution(mean, self.log_std)  # type: ignore[call-arg]

    def forward(
        self, obs: Any, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.prior is None:
            return super().forward(obs, deterministic)
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        distribution = self._distribution(latent_pi, obs)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), self.value_net(latent_vf), log_prob  # type: ignore[misc]

    def evaluate_actions(
        self, obs: Any, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if self.prior is None:
            return super().evaluate_actions(obs, actions)
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        distribution = self._distribution(latent_pi, obs)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: Any) -> Distribution:
        if self.prior is None:
            return super().get_distribution(obs)
        features = super(ActorCriticPolicy, self).extract_features(obs, self.pi_features_extractor)
        return self._distribution(self.mlp_extractor.forward_actor(features), obs)

    def action_std(self, obs: torch.Tensor | dict[str, torch.Tensor]) -> float:
        """PPO's exploration noise, in action units, averaged over joints and ``obs``."""
        if not self.use_sde:
            return float(torch.exp(self.log_std.detach()).mean())
        latent = self.actor_latent(obs).detach()
        variance = (latent**2) @ torch.exp(2.0 * self.log_std.detach())
        return float(torch.sqrt(variance).mean())

    def set_action_std(
        self, log_std: float, obs: torch.Tensor | dict[str, torch.Tensor] | None = None
    ) -> None:
        """Set the exploration noise so that ``action_std(obs)`` is about exp(``log_std``).

        Gaussian: the log-std itself. gSDE: an action's std is |latent| x the noise weights'
        std, so the weights get exp(log_std) / rms|latent| over ``obs`` (the states the robot
        will visit, e.g. the demonstrations).
        """
        with torch.no_grad():
            if not self.use_sde:
                self.log_std.fill_(log_std)
                return
            if obs is None:
                raise ValueError("gSDE's noise is scaled on observations: pass the states it will meet")
            latent = self.actor_latent(obs)
            rms = float(torch.sqrt(torch.mean(torch.sum(latent**2, dim=-1))))
            self.log_std.fill_(log_std - float(np.log(max(rms, 1e-6))))


def policy_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-plain constructor arguments of PiDogPolicy for a pipeline config."""
    kwargs: dict[str, Any] = {
        "hidden_sizes": [int(n) for n in config["policy"]["net_arch"]],
        "activation": str(config["policy"]["activation"]),
        "log_std_init": float(config["policy"]["initial_log_std"]),
    }
    if config["policy"]["exploration"] != "gaussian":
        kwargs["exploration"] = str(config["policy"]["exploration"])  # old checkpoints: no key
    if config["policy"]["privileged_critic"]:
        kwargs["privileged_dim"] = PRIVILEGED_DIM
    if config["env"].get("obs_history"):
        kwargs["obs_history"] = int(config["env"]["obs_history"])  # old checkpoints: no key
    if config["env"].get("action_filter_hz"):
        kwargs["action_filter_hz"] = float(config["env"]["action_filter_hz"])  # old checkpoints: no key
    if config["policy"].get("action_prior", "none") != "none":
        kwargs["action_prior"] = str(config["policy"]["action_prior"])  # old checkpoints: no key
    return kwargs


def policy_layout(kwargs: Mapping[str, Any]) -> ObservationLayout:
    """The observation layout of a policy built with these constructor arguments."""
    return observation_layout(int(kwargs.get("obs_history", 0)))


def observation_space(
    use_camera: bool, privileged_dim: int = 0, layout: ObservationLayout | None = None
) -> spaces.Space:
    """The policy's observation space (images channel-first, as SB3 feeds them)."""
    dim = (layout or observation_layout()).dim
    state = spaces.Box(-np.inf, np.inf, (dim + privileged_dim,), np.float32)
    if not use_camera:
        return state
    return spaces.Dict({"state": state, "image": spaces.Box(0, 255, (3, *CAMERA_SHAPE), np.uint8)})


def action_space() -> spaces.Box:
    return spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)


def make_policy(kwargs: Mapping[str, Any], use_camera: bool) -> PiDogPolicy:
    """A fresh PiDogPolicy outside PPO (BC, export); same class and arguments PPO builds."""
    space = observation_space(use_camera, int(kwargs.get("privileged_dim", 0)), policy_layout(kwargs))
    return PiDogPolicy(space, action_space(), lambda _progress: 0.0, **kwargs)


def state_only_batch(policy: PiDogPolicy, states: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
    """Policy input for state observations; a camera policy gets black images.

    With the image gate closed (as after BC) the image does not change the action; the
    DAPG term and BC use this because demonstrations carry no images.
    """
    if not policy.uses_camera:
        return states
    shape = cast(spaces.Box, cast(spaces.Dict, policy.observation_space)["image"]).shape
    return {"state": states, "image": torch.zeros((len(states), *shape), dtype=torch.float32)}
