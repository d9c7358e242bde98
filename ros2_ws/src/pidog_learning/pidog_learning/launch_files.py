"""Read our ROS 2 XML launch files without the ``launch`` package (not installable here).

Supports the subset the files in ``launch/`` use, and refuses anything else by name so a file
can never contain something these tests silently skip:

    <launch>
      <arg name="..." default="..." description="..."/>          (no default: required)
      <set_env name="..." value="..."/>                         (for the nodes after it)
      <node pkg="..." exec="..." name="..." output="screen" if="$(var x)" unless="$(var y)">
        <param name="..." value="..."/>
      </node>
    </launch>

Substitutions: ``$(var NAME)`` and ``$(env NAME [default])``. The result is the graph
``ros2 launch`` would start: which executables, under which names, with which parameters, and
the environment it sets for them (``env``; applied to every node, as the files use it at the top).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

NODE_ATTRIBUTES = {"pkg", "exec", "name", "output", "if", "unless"}
TRUE_WORDS = {"true", "1"}
FALSE_WORDS = {"false", "0"}
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")


class LaunchFileError(ValueError):
    """A launch file we cannot read; the message names the file and the element."""


@dataclass(frozen=True)
class LaunchArg:
    name: str
    default: str | None
    description: str = ""


@dataclass(frozen=True)
class LaunchNode:
    pkg: str
    executable: str
    name: str
    params: dict[str, str] = field(default_factory=dict)

    def ros_args(self) -> list[str]:
        """The command-line ``--ros-args`` that start this node as the launch file would."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        for key, value in self.params.items():
            # rcl parses -p values as YAML, like launch_ros does; "" must stay a string.
            args += ["-p", f"{key}:={value if value != '' else repr('')}"]
        return args


@dataclass(frozen=True)
class LaunchGraph:
    path: Path
    args: dict[str, LaunchArg]
    nodes: list[LaunchNode]
    env: dict[str, str] = field(default_factory=dict)


def parse_launch(path: str | os.PathLike[str], overrides: Mapping[str, str] | None = None) -> LaunchGraph:
    """Parse a launch file and resolve it with ``overrides`` (as ``ros2 launch f.xml a:=b``)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise LaunchFileError(f"{path}: cannot read launch XML: {exc}") from exc
    if root.tag != "launch":
        raise LaunchFileError(f"{path}: root element must be <launch>, is <{root.tag}>")
    overrides = dict(overrides or {})
    args: dict[str, LaunchArg] = {}
    values: dict[str, str] = {}
    nodes: list[LaunchNode] = []
    env: dict[str, str] = {}
    for element in root:
        if element.tag == "arg":
            arg = _parse_arg(path, element, values)
            args[arg.name] = arg
            if arg.name in overrides:
                values[arg.name] = overrides[arg.name]
            elif arg.default is not None:
                values[arg.name] = arg.default
            else:
                raise LaunchFileError(f"{path}: argument '{arg.name}' is required ({arg.description})")
        elif element.tag == "node":
            node = _parse_node(path, element, values)
            if node is not None:
                nodes.append(node)
        elif element.tag == "set_env":
            if nodes:
                raise LaunchFileError(f"{path}: <set_env> after a <node> would apply to some nodes only")
            env[_required(path, element, "name")] = substitute(
                path, _required(path, element, "value"), values
            )
        else:
            raise LaunchFileError(f"{path}: unsupported element <{element.tag}>")
    unknown = sorted(set(overrides) - set(args))
    if unknown:
        raise LaunchFileError(f"{path}: unknown launch arguments {unknown}; it declares {sorted(args)}")
    return LaunchGraph(path=path, args=args, nodes=nodes, env=env)


def _parse_arg(path: Path, element: ET.Element, values: Mapping[str, str]) -> LaunchArg:
    name = _required(path, element, "name")
    default = element.get("default")
    if default is not None:
        default = substitute(path, default, values)
    return LaunchArg(name=name, default=default, description=element.get("description", ""))


def _parse_node(path: Path, element: ET.Element, values: Mapping[str, str]) -> LaunchNode | None:
    extra = sorted(set(element.attrib) - NODE_ATTRIBUTES)
    if extra:
        raise LaunchFileError(f"{path}: <node> attributes {extra} are not supported")
    pkg = _required(path, element, "pkg")
    executable = _required(path, element, "exec")
    where = f"{path}: node {pkg}/{executable}"
    # Every node is named in our files, so tests (and users) know what to look for.
    name = substitute(path, _required(path, element, "name"), values)
    if "if" in element.attrib and not _condition(where, substitute(path, element.attrib["if"], values)):
        return None
    if "unless" in element.attrib and _condition(where, substitute(path, element.attrib["unless"], values)):
        return None
    params: dict[str, str] = {}
    for child in element:
        if child.tag != "param":
            raise LaunchFileError(f"{where}: unsupported child <{child.tag}>")
        key = _required(path, child, "name")
        if key in params:
            raise LaunchFileError(f"{where}: parameter '{key}' set twice")
        params[key] = substitute(path, _required(path, child, "value"), values)
    return LaunchNode(pkg=pkg, executable=executable, name=name, params=params)


def _required(path: Path, element: ET.Element, attribute: str) -> str:
    value = element.get(attribute)
    if value is None:
        raise LaunchFileError(f"{path}: <{element.tag}> lacks the '{attribute}' attribute")
    return value


def _condition(where: str, text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise LaunchFileError(f"{where}: condition must be true/false, got {text!r}")


def substitute(path: Path, text: str, values: Mapping[str, str]) -> str:
    """Resolve ``$(var NAME)`` and ``$(env NAME [default])`` in ``text``."""

    def one(match: re.Match[str]) -> str:
        kind, *rest = match.group(1).split()
        if kind == "var" and len(rest) == 1:
            if rest[0] not in values:
                raise LaunchFileError(f"{path}: $(var {rest[0]}) used before an <arg> declares it")
            return values[rest[0]]
        if kind == "env" and len(rest) in (1, 2):
            value = os.environ.get(rest[0], rest[1] if len(rest) == 2 else None)
            if value is None:
                raise LaunchFileError(f"{path}: environment variable {rest[0]} is not set")
            return value
        raise LaunchFileError(f"{path}: unsupported substitution $({match.group(1)})")

    return _SUBSTITUTION.sub(one, text)


def console_script_module(pkg: str, executable: str) -> str:
    """The Python module behind ``ros2 run pkg executable`` (a console script of ``pkg``)."""
    for entry in metadata.entry_points(group="console_scripts", name=executable):
        module = entry.value.split(":")[0]
        if module.split(".")[0] == pkg:
            return module
    raise LaunchFileError(f"package {pkg} has no executable '{executable}' (no such console script)")
