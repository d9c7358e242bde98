"""pidog-sweep: a grid or list of config overrides x seeds, one pipeline run each, on Ray.

    pidog-sweep sweep.yaml                              # a private Ray on this machine
    pidog-sweep sweep.yaml --ray-address 10.0.0.5:6379  # a cluster (docs/CLUSTER.md)
    pidog-sweep sweep.yaml --dry-run                    # validate and list the trials, run nothing

Sweep file (YAML or JSON; option keys nested or dotted, as in ``pidog-train --config FILE``):

    name: lr_study            # folder <output_dir>/<name>/ (default: the file's name)
    preset: default           # the pipeline preset every trial starts from
    output_dir: outputs
    base: {total_rl_timesteps: 300000, env: {forward_speed: 0.3}}  # every trial
    grid: {learning_rate: [1e-4, 3e-4], ppo.n_steps: [512, 1024]}  # cartesian product
    trials:                   # and/or a list of variants (each crossed with the grid)
      - {name: bcrl}
      - {name: scratch, no_bc_init: true, total_bc_epochs: 1}
    seeds: [0, 1, 2]          # every variant runs once per seed
    num_cpus: 1               # CPUs a trial reserves on its node (its physics and update threads)
    max_retries: 2            # reruns of a trial that raised or whose node died

Each trial is ``run_pipeline`` writing the normal experiment folder
``<output_dir>/<name>/<trial>/``; the results of all trials are gathered into
``results.md``, ``results.csv``, ``results.json`` and ``results.png`` in ``<output_dir>/<name>/``,
and one record per finished trial into ``trials/<trial>.json`` (written by this process, so the
table is complete even when the workers' disks are not shared with it). A re-run skips the
trials that finished; an interrupted trial resumes its experiment folder (``--resume``).

Why Ray tasks and not Ray Tune: a trial here is a whole pipeline run that already has its
own folder, checkpoints, resume and evaluation. Tasks give exactly what a study needs: a
resource shape per trial (``num_cpus``), retries when a node dies (``max_retries``) or the code
raises (``retry_exceptions``), cancellation, and results as plain return values. Tune would
add a second trial layout, checkpoint protocol and result logger (and pull in
``ray[tune]``'s pandas/pyarrow), for schedulers and searchers a grid x seeds study does not
use: stopping some seeds early would bias the comparison the study is for.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_json, write_text
from .config import (
    DEFAULT_CONFIG,
    PRESETS,
    ConfigError,
    add_set_option,
    combine,
    flatten,
    parse_assignments,
    read_structured_file,
    resolve_config,
    unflatten,
)
from .ray_cluster import ClusterError, alive_nodes, connect, import_ray, shutdown

SWEEP_KEYS: frozenset[str] = frozenset(
    {"name", "preset", "output_dir", "base", "grid", "trials", "seeds", "num_cpus", "max_retries"}
)
# The sweep decides these per trial; a sweep file that sets them would fight it.
OWNED_OPTIONS: frozenset[str] = frozenset({"seed", "output_dir", "experiment_name"})
SPEC_FILE = "sweep.json"
RECORDS_DIR = "trials"
ATTEMPTS_DIR = "attempts"
RESULTS = {"md": "results.md", "csv": "results.csv", "json": "results.json", "plot": "results.png"}
STOP_GRACE_S = 60.0  # after Ctrl-C: time a running trial gets to save a checkpoint
COLUMNS = (
    "trial",
    "variant",
    "seed",
    "status",
    "attempts",
    "node",
    "wall_s",
    "selected",
    "speed_mps",
    "falls",
    "return",
    "bc_speed_mps",
    "finetuned_speed_mps",
    "trot_speed_mps",
    "vx_error",
    "wz_error",
    "error",
)


@dataclass
class Trial:
    trial_id: str
    variant: str
    seed: int
    overrides: dict[str, Any]  # the sweep file's, before the sweep's own (seed, folder)
    config: dict[str, Any]  # resolved and validated

    @property
    def folder(self) -> Path:
        return Path(self.config["output_dir"]) / self.config["experiment_name"]


@dataclass
class Sweep:
    name: str
    preset: str
    directory: Path
    num_cpus: int
    max_retries: int
    trials: list[Trial] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "preset": self.preset,
            "num_cpus": self.num_cpus,
            "max_retries": self.max_retries,
            "trials": [
                {"trial": t.trial_id, "variant": t.variant, "seed": t.seed, "overrides": t.overrides}
                for t in self.trials
            ],
        }


# --- the sweep file -------------------------------------------------------------------------------


def _error(where: str, message: str) -> ConfigError:
    return ConfigError(f"sweep file {where}: {message}")


def _overrides(where: str, what: str, value: Any) -> dict[str, Any]:
    """Nested or dotted option keys -> nested overrides (checked against the defaults later)."""
    if not isinstance(value, Mapping):
        raise _error(where, f"'{what}' must be a mapping of options, got {value!r}")
    layer = unflatten(flatten(value))
    owned = sorted(OWNED_OPTIONS & set(layer))
    if owned:
        raise _error(
            where,
            f"'{what}' sets {owned}: the sweep sets them per trial (use 'seeds:' and 'output_dir:')",
        )
    return layer


def _label(overrides: Mapping[str, Any]) -> str:
    return ",".join(
        f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in flatten(overrides).items()
    )


def _folder_name(text: str) -> str:
    """A plain folder name: unusual characters replaced, long names shortened with a hash."""
    name = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text).strip(".") or "trial"
    if len(name) > 80:
        name = f"{name[:70]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return name


def _variants(where: str, data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, overrides) per variant: the list entries crossed with the grid's points."""
    listed: list[tuple[str | None, dict[str, Any]]] = [(None, {})]
    if data.get("trials") is not None:
        entries = data["trials"]
        if not isinstance(entries, list) or not entries:
            raise _error(where, f"'trials' must be a non-empty list of option mappings, got {entries!r}")
        listed = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise _error(where, f"trials[{i}] must be a mapping of options, got {entry!r}")
            entry = dict(entry)
            name = entry.pop("name", None)
            if name is not None and (not isinstance(name, str) or not name.strip()):
                raise _error(where, f"trials[{i}].name must be a non-empty string, got {name!r}")
            listed.append((name, _overrides(where, f"trials[{i}]", entry)))
    points: list[dict[str, Any]] = [{}]
    if data.get("grid") is not None:
        grid = data["grid"]
        if not isinstance(grid, Mapping) or not grid:
            raise _error(where, f"'grid' must map options to lists of values, got {grid!r}")
        axes = []
        for key, values in flatten(grid).items():
            if not isinstance(values, list) or not values:
                raise _error(where, f"grid option '{key}' needs a non-empty list of values, got {values!r}")
            axes.append([(key, v) for v in values])
        points = [_overrides(where, "grid", dict(combo)) for combo in itertools.product(*axes)]
    variants = []
    for (name, listed_overrides), point in itertools.product(listed, points):
        parts = (name or _label(listed_overrides), _label(point))
        variants.append((",".join(p for p in parts if p) or "base", combine(listed_overrides, point)))
    return variants


def load_sweep(
    path: str | os.PathLike[str],
    set_overrides: Sequence[str] = (),
    output_dir: str | None = None,
    name: str | None = None,
    num_cpus: int | None = None,
    max_retries: int | None = None,
) -> Sweep:
    """Read, expand and validate a sweep file: every trial's config is resolved now, so a bad
    key or value is reported (naming the file and trial) before anything runs."""
    path = Path(path)
    where = str(path)
    data = read_structured_file(path, "sweep file")
    if not isinstance(data, Mapping):
        raise _error(
            where, f"must hold a mapping (name, preset, base, grid, trials, seeds, ...), got {data!r}"
        )
    unknown = sorted(set(data) - SWEEP_KEYS)
    if unknown:
        raise _error(where, f"unknown key(s) {unknown}; valid keys: {sorted(SWEEP_KEYS)}")

    preset = data.get("preset", "default")
    if preset not in PRESETS:
        raise _error(where, f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    name = name or data.get("name") or path.stem
    if not isinstance(name, str) or "/" in name or name in (".", "..") or not name.strip():
        raise _error(where, f"'name' must be a plain folder name, got {name!r}")
    out = output_dir or data.get("output_dir") or DEFAULT_CONFIG["output_dir"]
    if not isinstance(out, str) or not out.strip():
        raise _error(where, f"'output_dir' must be a path, got {out!r}")
    seeds = data.get("seeds", [DEFAULT_CONFIG["seed"]])
    seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise _error(where, f"'seeds' must be a list of distinct integers >= 0, got {seeds!r}")
    cpus = num_cpus if num_cpus is not None else data.get("num_cpus", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise _error(where, f"'num_cpus' must be an integer >= 1, got {cpus!r}")
    retries = max_retries if max_retries is not None else data.get("max_retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise _error(where, f"'max_retries' must be an integer >= 0, got {retries!r}")

    base = combine(_overrides(where, "base", data.get("base") or {}), parse_assignments(set_overrides))
    sweep = Sweep(name, preset, Path(out).resolve() / name, cpus, retries)
    seen: dict[str, str] = {}
    for label, variant in _variants(where, data):
        overrides = combine(base, variant)
        for seed in seeds:
            trial_id = _folder_name(f"{label}_seed{seed}")
            if trial_id in seen:
                raise _error(
                    where, f"trials '{seen[trial_id]}' and '{label}' share the folder {trial_id}; name them"
                )
            seen[trial_id] = label
            # Defaults a sweep file may change: physics and the learner's updates (BC epochs,
            # PPO updates) on the CPUs the trial reserved, since trials run side by side and 0
            # would mean every core of the node; progress as log lines, not bars.
            layer = combine(
                {"physics_threads": cpus, "update_threads": cpus, "progress_bar": False},
                overrides,
                {"seed": seed, "output_dir": str(sweep.directory), "experiment_name": trial_id},
            )
            try:
                config = resolve_config(preset, layer)
            except ConfigError as exc:
                raise _error(where, f"trial {trial_id}: {exc}") from None
            sweep.trials.append(Trial(trial_id, label, seed, overrides, config))
    return sweep


def preflight_trials(sweep: Sweep) -> None:
    """The pipeline's own input checks (env options, model files), once per distinct config."""
    from .pipeline import PipelineError, preflight

    checked: set[str] = set()
    for trial in sweep.trials:
        key = json.dumps(
            {k: v for k, v in trial.config.items() if k not in OWNED_OPTIONS}, sort_keys=True, default=str
        )
        if key in checked:
            continue
        checked.add(key)
        try:
            preflight(trial.config)
        except PipelineError as exc:
            raise ConfigError(f"sweep trial {trial.trial_id}: {exc}") from None


# --- one trial (runs in a Ray worker) ---------------------------------------------------------------


def run_trial(trial: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume, or just read) one trial's experiment folder; returns its record.

    Bad input (ConfigError/PipelineError) is returned as a failed record: it would fail the
    same way again. Anything else raises, and Ray retries the trial.
    """
    from .pipeline import CONFIG_FILE, EVAL_FILE, PipelineError, run_pipeline

    start = time.monotonic()
    config = trial["config"]
    folder = Path(config["output_dir"]) / config["experiment_name"]
    attempt = _log_attempt(Path(config["output_dir"]) / ATTEMPTS_DIR / f"{trial['trial']}.jsonl")
    try:
        if (folder / EVAL_FILE).is_file():
            pass  # finished before; its record was lost with the driver
        elif (folder / CONFIG_FILE).is_file():
            run_pipeline(resume=folder)  # an earlier attempt stopped: continue where it was
        else:
            if folder.exists():
                shutil.rmtree(folder)  # created but nothing written yet (no config.json)
            run_pipeline(config)
    except (ConfigError, PipelineError) as exc:
        return {**attempt, "status": "failed", "error": str(exc), "wall_s": time.monotonic() - start}
    evaluation = json.loads((folder / EVAL_FILE).read_text())
    return {
        **attempt,
        "status": "done",
        "error": None,
        "wall_s": time.monotonic() - start,
        "metrics": trial_metrics(evaluation),
    }


def _log_attempt(path: Path) -> dict[str, Any]:
    """Append this attempt (node, pid, time) to the trial's attempt log; returns it numbered."""
    from .ray_cluster import current_node_id

    path.parent.mkdir(parents=True, exist_ok=True)
    previous = len(path.read_text().splitlines()) if path.is_file() else 0
    attempt = {"attempt": previous + 1, "node": current_node_id(), "pid": os.getpid(), "started": time.time()}
    with open(path, "a") as f:  # one line per attempt; attempts of a trial never overlap
        f.write(json.dumps(attempt) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return attempt


def trial_metrics(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The table's numbers from a trial's eval.json (the deployed policy first)."""
    selected = evaluation["selected"]
    results = evaluation["results"]
    deployed = results[selected]
    metrics: dict[str, Any] = {
        "selected": selected,
        "speed_mps": deployed["mean_forward_speed_mps"],
        "falls": deployed["falls"],
        "return": deployed["mean_return"],
        "episodes": deployed["episodes"],
    }
    for name in ("bc", "finetuned", "trot"):
        if name in results:
            metrics[f"{name}_speed_mps"] = results[name]["mean_forward_speed_mps"]
    tracking = (evaluation.get("tracking") or {}).get(selected)
    if tracking:
        metrics["vx_error"] = tracking.get("mean_abs_vx_error")
        metrics["wz_error"] = tracking.get("mean_abs_wz_error")
    return metrics


# --- running the sweep --------------------------------------------------------------------------------


def _record_path(sweep: Sweep, trial: Trial) -> Path:
    return sweep.directory / RECORDS_DIR / f"{trial.trial_id}.json"


def finished_record(sweep: Sweep, trial: Trial) -> dict[str, Any] | None:
    """The record of a trial that finished in an earlier run (None: it has to run)."""
    from .pipeline import EVAL_FILE

    path = _record_path(sweep, trial)
    record = json.loads(path.read_text()) if path.is_file() else None
    if record is not None and record.get("status") == "done":
        if record.get("overrides") != json.loads(json.dumps(trial.overrides)):
            raise ConfigError(
                f"trial {trial.trial_id} finished earlier with other overrides ({record.get('overrides')}); "
                "give the sweep another name (--name) to run the new ones"
            )
        return record
    if (trial.folder / EVAL_FILE).is_file():  # finished, but this driver never saw it
        evaluation = json.loads((trial.folder / EVAL_FILE).read_text())
        return _record(trial, {"status": "done", "attempt": None, "metrics": trial_metrics(evaluation)})
    return None


def _record(trial: Trial, result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "trial": trial.trial_id,
        "variant": trial.variant,
        "seed": trial.seed,
        "overrides": json.loads(json.dumps(trial.overrides)),
        "experiment": str(trial.folder),
        "status": result["status"],
        "attempts": result.get("attempt"),
        "node": result.get("node"),
        "wall_s": result.get("wall_s"),
        "error": result.get("error"),
        "metrics": dict(result.get("metrics") or {}),
    }


def _attempts_seen(sweep: Sweep, trial: Trial) -> int | None:
    log = sweep.directory / ATTEMPTS_DIR / f"{trial.trial_id}.jsonl"
    return len(log.read_text().splitlines()) if log.is_file() else None


def check_capacity(num_cpus: int) -> None:
    nodes = alive_nodes()
    largest = max((n.cpus for n in nodes), default=0.0)
    if largest < num_cpus:
        raise ClusterError(
            f"every trial reserves num_cpus={num_cpus}, but the largest node of the Ray cluster has "
            f"{largest:g} CPUs ({len(nodes)} node(s)); lower num_cpus (--num-cpus) or add bigger nodes"
        )


def run_sweep(sweep: Sweep, address: str | None, say: Any = print) -> tuple[list[dict[str, Any]], bool]:
    """Run the unfinished trials on Ray; returns (records of all trials, interrupted)."""
    records: dict[str, dict[str, Any]] = {}
    todo: list[Trial] = []
    for trial in sweep.trials:
        record = finished_record(sweep, trial)
        if record is None:
            todo.append(trial)
        else:
            records[trial.trial_id] = record
    write_json(sweep.directory / SPEC_FILE, sweep.spec())
    if records:
        say(f"{len(records)} of {len(sweep.trials)} trials finished earlier: skipped")
    interrupted = False
    if todo:
        started = connect(address)
        try:
            interrupted = _run_on_ray(sweep, todo, records, say)
        finally:
            shutdown(started)
    ordered = [records[t.trial_id] for t in sweep.trials if t.trial_id in records]
    return ordered, interrupted


def _run_on_ray(sweep: Sweep, todo: list[Trial], records: dict[str, dict[str, Any]], say: Any) -> bool:
    ray = import_ray()
    check_capacity(sweep.num_cpus)
    # max_calls=1: a fresh process per trial, so no torch/MuJoCo state leaks into the next one.
    remote = ray.remote(max_calls=1)(run_trial).options(
        num_cpus=sweep.num_cpus,
        max_retries=sweep.max_retries,  # the node died, or the worker process did
        retry_exceptions=True,  # the trial raised (bad input is returned, not raised: no retry)
        scheduling_strategy="SPREAD",  # trials on different nodes before doubling up on one
    )
    pending = {remote.remote({"trial": t.trial_id, "config": t.config}): t for t in todo}
    say(
        f"running {len(todo)} trial(s) on Ray, {sweep.num_cpus} CPU(s) each, up to {sweep.max_retries} retries"
    )
    done = len(records)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                trial = pending.pop(ref)
                record = _collect(ray, ref, trial, sweep)
                records[trial.trial_id] = record
                write_json(_record_path(sweep, trial), record)
                done += 1
                say(f"[{done}/{len(sweep.trials)}] {_summary(record)}")
    except KeyboardInterrupt:
        say(f"\ninterrupted: stopping {len(pending)} running trial(s) (their checkpoints are kept)")
        _stop(ray, list(pending))
        return True
    return False


def _collect(ray: Any, ref: Any, trial: Trial, sweep: Sweep) -> dict[str, Any]:
    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as exc:
        # Retries used up: the trial kept raising or its nodes kept dying.
        message = str(getattr(exc, "cause", None) or exc).strip().splitlines()
        result = {"status": "failed", "error": message[-1] if message else type(exc).__name__}
        result["attempt"] = _attempts_seen(sweep, trial)
    record = _record(trial, result)
    seen = _attempts_seen(sweep, trial)
    if seen is not None:  # the log also counts attempts whose node died (shared disk)
        record["attempts"] = seen
    return record


def _stop(ray: Any, refs: list[Any]) -> None:
    """Ctrl-C: a KeyboardInterrupt in each running trial (PPO saves a checkpoint), then force."""
    for ref in refs:
        ray.cancel(ref, force=False)
    _, stuck = ray.wait(refs, num_returns=len(refs), timeout=STOP_GRACE_S)
    for ref in stuck:
        ray.cancel(ref, force=True)


def _summary(record: Mapping[str, Any]) -> str:
    m = record.get("metrics") or {}
    where = f" on node {str(record.get('node'))[:8]}" if record.get("node") else ""
    tries = f", attempt {record['attempts']}" if (record.get("attempts") or 1) > 1 else ""
    if record["status"] == "done":
        return (
            f"{record['trial']}: done{where}{tries}: {m.get('selected')} policy "
            f"{_fmt(m.get('speed_mps'), 3)} m/s, {m.get('falls')} falls"
        )
    return f"{record['trial']}: FAILED{where}{tries}: {record.get('error')}"


# --- results ------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        row = {
            k: r.get(k) for k in ("trial", "variant", "seed", "status", "attempts", "node", "wall_s", "error")
        }
        row["node"] = str(row["node"])[:8] if row["node"] else None
        row.update({k: v for k, v in (r.get("metrics") or {}).items() if k in COLUMNS})
        rows.append({k: row.get(k) for k in COLUMNS})
    return rows


def variant_summary(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per variant over its finished seeds: mean and std of the deployed policy's numbers."""
    import numpy as np

    out = []
    for variant in dict.fromkeys(r["variant"] for r in records):
        done = [r["metrics"] for r in records if r["variant"] == variant and r["status"] == "done"]
        speeds = [m["speed_mps"] for m in done]
        out.append(
            {
                "variant": variant,
                "seeds_done": len(done),
                "seeds": sum(r["variant"] == variant for r in records),
                "speed_mps_mean": float(np.mean(speeds)) if speeds else None,
                "speed_mps_std": float(np.std(speeds)) if speeds else None,
                "falls_mean": float(np.mean([m["falls"] for m in done])) if done else None,
                "return_mean": float(np.mean([m["return"] for m in done])) if done else None,
            }
        )
    return out


def write_results(sweep: Sweep, records: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    rows = table_rows(records)
    summary = variant_summary(records)
    d = sweep.directory
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    paths = {
        "csv": write_text(d / RESULTS["csv"], buffer.getvalue()),
        "json": write_json(
            d / RESULTS["json"], {"sweep": sweep.spec(), "summary": summary, "trials": list(records)}
        ),
    }
    md = [
        f"# Sweep {sweep.name}",
        "",
        f"{len(records)} of {len(sweep.trials)} trials recorded; preset `{sweep.preset}`; experiment folders in "
        f"`{d}`. Speeds and falls are the deployed policy's (`selected`) in the final evaluation.",
        "",
        "| variant | seeds done | speed m/s (mean ± std) | falls (mean) | return (mean) |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in summary:
        md.append(
            f"| {s['variant']} | {s['seeds_done']}/{s['seeds']} | {_fmt(s['speed_mps_mean'])} ± {_fmt(s['speed_mps_std'])} "
            f"| {_fmt(s['falls_mean'], 1)} | {_fmt(s['return_mean'], 1)} |"
        )
    md += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        md.append("| " + " | ".join(_fmt(row[k]).replace("|", "/") for k in COLUMNS) + " |")
    paths["md"] = write_text(d / RESULTS["md"], "\n".join(md) + "\n")
    paths["plot"] = plot_sweep(records, d / RESULTS["plot"])
    return paths


def plot_sweep(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Deployed-policy speed per variant: one dot per seed, a bar at the mean."""
    from .plots import plt, save_figure

    variants = list(dict.fromkeys(r["variant"] for r in records))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(variants) + 2), 3.5))
    for i, variant in enumerate(variants):
        speeds = [
            r["metrics"]["speed_mps"] for r in records if r["variant"] == variant and r["status"] == "done"
        ]
        if speeds:
            ax.bar(i, sum(speeds) / len(speeds), color="tab:blue", alpha=0.4)
            ax.plot([i] * len(speeds), speeds, "o", color="tab:blue")
    ax.set_xticks(range(len(variants)), variants, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("forward speed (m/s)")
    ax.set_title("deployed policy per variant (dots: seeds)")
    return save_figure(fig, path)


# --- command line ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pidog-sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_file", type=Path, help="the sweep's YAML/JSON file")
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="the Ray cluster's head (or 'auto'); default: a private Ray on this machine",
    )
    parser.add_argument("--output-dir", default=None, help="overrides the file's output_dir")
    parser.add_argument("--name", default=None, help="overrides the file's name (the sweep folder)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs per trial (overrides the file)")
    parser.add_argument(
        "--max-retries", type=int, default=None, help="retries per trial (overrides the file)"
    )
    add_set_option(parser, "override an option in every trial (as pidog-train --set); repeatable")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the trials, run nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(
            args.sweep_file, args.assignments, args.output_dir, args.name, args.num_cpus, args.max_retries
        )
        preflight_trials(sweep)
        if args.ray_address is not None:
            from .ray_cluster import check_ray_address

            check_ray_address(args.ray_address)
    except (ConfigError, ClusterError) as exc:
        parser.exit(2, f"pidog-sweep: error: {exc}\n")
    print(f"sweep {sweep.name}: {len(sweep.trials)} trial(s) in {sweep.directory}")
    if args.dry_run:
        for t in sweep.trials:
            print(f"  {t.trial_id}")
        return 0
    try:
        records, interrupted = run_sweep(sweep, args.ray_address)
    except (ConfigError, ClusterError) as exc:
        parser.exit(2, f"pidog-sweep: error: {exc}\n")
    paths = write_results(sweep, records) if records else {}
    failed = [r["trial"] for r in records if r["status"] != "done"]
    missing = len(sweep.trials) - len(records)
    for kind, path in paths.items():
        print(f"  {kind:<5} {path}")
    if interrupted:
        print(
            f"stopped with {missing} trial(s) unfinished; run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    if failed:
        print(f"{len(failed)} trial(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
