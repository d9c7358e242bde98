"""ONNX export (normaliser in the graph, DESIGN.md §5 metadata), pickle-free checkpoint loading,
and ``pidog-export CHECKPOINT -o policy.onnx``.

The ONNX contract (read by pidog_control.policy_runtime on the robot): input ``obs`` float32
[batch, 26] raw observation (camera policies add ``image`` uint8 [batch, H, W, 3]); output
``action`` float32 [batch, 8], the deterministic action clipped to [-1, 1].
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from pidog_description.spec import ACTION_DIM, policy_metadata

from .atomic import write_bytes
from .bc import PretrainedModelError, check_compatible, load_into_policy, load_policy_weights
from .networks import PiDogPolicy, make_policy

ONNX_OPSET = 17  # well inside what onnxruntime 1.31 runs, and older onnxruntime builds on a Pi too
ONNX_TOLERANCE = 1e-5
METADATA_ATTRIBUTE = "pidog_metadata"  # saved into PPO zips as plain JSON (see ppo_finetune)


class DeterministicActor(nn.Module):
    """policy -> clamp(mean action, -1, 1); camera policies take the raw HWC uint8 image."""

    def __init__(self, policy: PiDogPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        if self.policy.uses_camera:
            # SB3 divides image spaces by 255 itself (preprocess_obs); we only reorder to CHW.
            assert image is not None  # a camera policy is always given the image
            policy_obs: Any = {"state": obs, "image": image.permute(0, 3, 1, 2).float()}
        else:
            policy_obs = obs
        return torch.clamp(self.policy.mean_actions(policy_obs), -1.0, 1.0)


def _example_inputs(policy: PiDogPolicy, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = policy.normalizer.mean.numpy()
    std = policy.normalizer.std.numpy()
    # Around the data the policy was fitted to, and well outside it (clip path exercised).
    obs = (mean + std * rng.normal(0.0, 3.0, (batch, policy.layout.dim))).astype(np.float32)
    inputs: dict[str, np.ndarray] = {"obs": obs}
    if policy.uses_camera:
        _c, h, w = cast(spaces.Box, cast(spaces.Dict, policy.observation_space)["image"]).shape
        inputs["image"] = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    return inputs


def torch_actions(policy: PiDogPolicy, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    actor = DeterministicActor(policy).eval()
    with torch.no_grad():
        args = [torch.as_tensor(inputs["obs"])]
        if policy.uses_camera:
            args.append(torch.as_tensor(inputs["image"]))
        return actor(*args).numpy()


TRAINING_INFO_KEY = "training_info"  # ONNX metadata: JSON of how the file was trained
EXPLORATION_STD_KEY = "exploration_std"  # in it: PPO's exploration noise (Gaussian policies)


def recorded_exploration_std(metadata: Mapping[str, str]) -> float | None:
    """The exploration noise an exported policy's metadata records (``export_onnx``), or None:
    files exported before it was recorded, and gSDE policies, have none."""
    info = json.loads(metadata.get(TRAINING_INFO_KEY, "{}"))
    value = info.get(EXPLORATION_STD_KEY)
    return None if value is None else float(value)


def export_onnx(policy: PiDogPolicy, path: str | os.PathLike[str], training_info: Mapping[str, Any]) -> Path:
    """Write ``policy`` as ONNX atomically, after checking onnxruntime agrees with torch."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    policy = policy.to("cpu")
    was_training = policy.training
    policy.eval()
    actor = DeterministicActor(policy).eval()
    example = _example_inputs(policy, batch=2, seed=0)
    names = ["obs", "image"] if policy.uses_camera else ["obs"]
    args = tuple(torch.as_tensor(example[n]) for n in names)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the torch.export-based exporter needs onnxscript, not in our pins.
        torch.onnx.export(
            actor,
            args,
            buffer,  # type: ignore[arg-type]  # torch's annotation omits file objects, which it writes to
            dynamo=False,
            input_names=names,
            output_names=["action"],
            dynamic_axes={n: {0: "batch"} for n in [*names, "action"]},
            opset_version=ONNX_OPSET,
        )
    model = onnx.load_from_string(buffer.getvalue())
    info = dict(training_info)
    if not policy.use_sde:
        # The noise PPO explored with at this point (the robot runs the mean): what a benchmark
        # adds back to see how much of the mean was tuned for the noisy policy. gSDE's noise
        # depends on the state, so it has no single figure.
        info[EXPLORATION_STD_KEY] = round(policy.action_std(args[0]), 4)
    props = {
        **policy_metadata(policy.layout, policy.action_filter_hz),
        "inputs": ",".join(names),
        TRAINING_INFO_KEY: json.dumps(info, sort_keys=True, default=str),
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    check = _example_inputs(policy, batch=64, seed=1)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(["action"], {n: check[n] for n in names})[0]
    want = torch_actions(policy, check)
    err = float(np.max(np.abs(got - want)))
    if not err <= ONNX_TOLERANCE:
        raise RuntimeError(f"ONNX export of {path} disagrees with torch by {err:.2e} (> {ONNX_TOLERANCE})")

    write_bytes(path, data)
    policy.train(was_training)
    return path


# --- loading policies without unpickling -------------------------------------------------------


def read_checkpoint_data(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON 'data' of an SB3 zip, without deserialising its pickled entries."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("data").decode())
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise PretrainedModelError(
            f"cannot read {path} as an SB3 checkpoint (corrupt or not a .zip): {exc}"
        ) from exc


def checkpoint_metadata_of(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pidog metadata, SB3 data JSON) of a pipeline PPO checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedModelError(f"checkpoint not found: {path}")
    data = read_checkpoint_data(path)
    meta = data.get(METADATA_ATTRIBUTE)
    if not isinstance(meta, dict):
        raise PretrainedModelError(
            f"{path} is an SB3 checkpoint but not one from the PiDog pipeline (no {METADATA_ATTRIBUTE})"
        )
    return meta, data


def load_checkpoint_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The policy state_dict of an SB3 zip (torch.load with weights_only=True inside SB3)."""
    from stable_baselines3.common.save_util import load_from_zip_file

    try:
        _data, params, _vars = load_from_zip_file(path, load_data=False, device="cpu")
    except Exception as exc:
        raise PretrainedModelError(f"cannot read the weights in {path}: {exc}") from exc
    if "policy" not in params:
        raise PretrainedModelError(f"{path} holds no policy weights")
    return cast(
        dict[str, torch.Tensor], params["policy"]
    )  # SB3 types each entry as a tensor, not a state_dict


def load_checkpoint_policy(
    path: str | os.PathLike[str], kwargs: Mapping[str, Any] | None = None, use_camera: bool | None = None
) -> PiDogPolicy:
    """A PiDogPolicy from a pipeline PPO checkpoint (.zip) or BC weights (.pth).

    With ``kwargs``/``use_camera`` the checkpoint must match them (pretrained-model check);
    without, the network is rebuilt from the checkpoint's own metadata.
    """
    path = Path(path)
    if path.suffix == ".pth":
        state_dict, meta = load_policy_weights(path)
    else:
        meta, _data = checkpoint_metadata_of(path)
        state_dict = load_checkpoint_state(path)
    want_kwargs = dict(kwargs) if kwargs is not None else dict(meta.get("policy_kwargs") or {})
    want_camera = bool(meta.get("use_camera")) if use_camera is None else use_camera
    check_compatible(meta, want_kwargs, want_camera, str(path))
    policy = make_policy(want_kwargs, want_camera)
    load_into_policy(policy, state_dict, str(path))
    return policy.eval()


def policy_controller(policy: PiDogPolicy) -> Callable[[Any], np.ndarray]:
    """obs -> deterministic action (8,), normaliser applied, for evaluate() and demos."""
    actor = DeterministicActor(policy).eval()
    dim = policy.layout.dim

    def act(obs: Any) -> np.ndarray:
        with torch.no_grad():
            if isinstance(obs, Mapping):
                state = torch.as_tensor(np.asarray(obs["state"], dtype=np.float32)).reshape(1, dim)
                image = torch.as_tensor(np.asarray(obs["image"], dtype=np.uint8))[None]
                if not policy.uses_camera:
                    return actor(state).numpy()[0]
                return actor(state, image).numpy()[0]
            if policy.uses_camera:
                raise ValueError("this policy needs camera observations (PiDogEnv(use_camera=True))")
            state = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, dim)
            return actor(state).numpy()[0]

    # What the sim must feed it and run it behind (rollout.env_config_for).
    act.layout = policy.layout  # type: ignore[attr-defined]
    act.action_filter_hz = policy.action_filter_hz  # type: ignore[attr-defined]
    return act


def load_sb3_controller(path: str | os.PathLike[str]) -> Callable[[Any], np.ndarray]:
    """``pidog-eval --controller PATH.zip``: deterministic controller of a pipeline checkpoint."""
    return policy_controller(load_checkpoint_policy(path))


# --- pidog-export ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pidog-export",
        description="Export a pipeline checkpoint (PPO .zip or BC .pth) to ONNX with the normaliser baked in.",
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoints/ppo_*.zip or bc_pretrained_policy.pth")
    parser.add_argument("-o", "--output", type=Path, default=Path("policy.onnx"), help="ONNX file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        policy = load_checkpoint_policy(args.checkpoint)
    except PretrainedModelError as exc:
        parser.exit(2, f"pidog-export: error: {exc}\n")
    info: dict[str, Any] = {"source_checkpoint": str(args.checkpoint.resolve())}
    if args.checkpoint.suffix == ".zip":
        info["timesteps"] = int(read_checkpoint_data(args.checkpoint).get("num_timesteps", 0))
    out = export_onnx(policy, args.output, info)
    print(
        f"wrote {out.resolve()} (inputs: {'obs, image' if policy.uses_camera else 'obs'}; {ACTION_DIM} actions)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
