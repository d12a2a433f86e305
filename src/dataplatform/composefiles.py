"""Reads the compose files as Docker Compose does, without Docker.

Used by `dataplatform doctor` (the Docker host's budget) and by the compose tests.

Covers what this repository's files use: YAML anchors and merge keys, the `!override` and
`!reset` tags of Compose 2.24+, merging overlay files (compose's documented merge rules for the
keys used here), profiles, and `${VAR...}` interpolation syntax (left as text: values come from
the user's `.env`, which tests never read).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from dataplatform.settings import project_root

ROOT = project_root()
BASE = ROOT / "docker-compose.yml"
TEST_OVERLAY = ROOT / "docker-compose.test.yml"
SEAWEEDFS_OVERLAY = ROOT / "docker-compose.seaweedfs.yml"
OVERLAYS = (TEST_OVERLAY, SEAWEEDFS_OVERLAY)

ENV_EXAMPLE = ROOT / ".env.example"
#: Compose's own loader (compose-go) as a tool: `tools/compose-resolve`, built into the venv by
#: quick_start.sh, found beside this interpreter (never through PATH).
RESOLVER = Path(sys.executable).parent / "compose-resolve"

#: Track -> the `--profile` flags that start it (starter services carry no profile).
TRACK_PROFILES: dict[str, tuple[str, ...]] = {
    "starter": (),
    "intermediate": ("intermediate",),
    "advanced": ("advanced",),
}

#: The file combinations users run: plain, with the SeaweedFS switch, with the test overlay.
VARIANTS: dict[str, tuple[Path, ...]] = {
    "minio": (BASE,),
    "seaweedfs": (BASE, SEAWEEDFS_OVERLAY),
    "test": (BASE, TEST_OVERLAY),
}


@dataclass(frozen=True)
class Tagged:
    """A value carrying compose's `!override` (replace, don't merge) or `!reset` (remove) tag."""

    tag: str
    value: Any


class _Loader(yaml.SafeLoader):
    pass


def _tagged(tag: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Tagged:
        if isinstance(node, yaml.MappingNode):
            value: Any = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(cast(yaml.ScalarNode, node))
        return Tagged(tag, value)

    return construct


_Loader.add_constructor("!override", _tagged("override"))
_Loader.add_constructor("!reset", _tagged("reset"))


def load(path: Path) -> dict[str, Any]:
    """One compose file as written (tags kept as `Tagged`)."""
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def untagged(value: Any) -> Any:
    """The file's data with tags dropped (`!reset x` and `!override x` become x)."""
    if isinstance(value, Tagged):
        return untagged(value.value)
    if isinstance(value, dict):
        return {key: untagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [untagged(item) for item in value]
    return value


#: Sequences compose merges instead of replacing (compose-spec "merge" section).
_UNION_KEYS = frozenset(
    {
        "ports",
        "expose",
        "external_links",
        "dns",
        "dns_search",
        "tmpfs",
        "cap_add",
        "cap_drop",
        "security_opt",
        "env_file",
        "profiles",
    }
)
#: Sequences compose merges by their target path.
_BY_TARGET_KEYS = frozenset({"volumes", "devices"})


def _target(entry: Any) -> str:
    if isinstance(entry, dict):
        return str(entry.get("target"))
    parts = str(entry).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _merge(base: Any, overlay: Any, key: str | None = None) -> Any:
    if isinstance(overlay, Tagged):
        return untagged(overlay.value)
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for name, value in overlay.items():
            if isinstance(value, Tagged) and value.tag == "reset":
                merged.pop(name, None)
            elif name in merged:
                merged[name] = _merge(merged[name], value, name)
            else:
                merged[name] = untagged(value)
        return merged
    if isinstance(base, list) and isinstance(overlay, list):
        if key in _UNION_KEYS:
            return base + [item for item in overlay if item not in base]
        if key in _BY_TARGET_KEYS:
            targets = {_target(item) for item in overlay}
            return [item for item in base if _target(item) not in targets] + list(overlay)
    return copy.deepcopy(untagged(overlay))


def merged_model(*paths: Path) -> dict[str, Any]:
    """The model compose builds from `-f a -f b ...`: later files merged onto earlier ones."""
    model: dict[str, Any] = {}
    for path in paths:
        model = _merge(model, load(path))
    return untagged(model)


def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The model's services (extension fields `x-*` excluded)."""
    return {name: spec for name, spec in model["services"].items() if not name.startswith("x-")}


def enabled(model: dict[str, Any], track: str) -> dict[str, dict[str, Any]]:
    """The services `docker compose --profile <track's profile> up` starts."""
    active = set(TRACK_PROFILES[track])
    return {
        name: spec
        for name, spec in services(model).items()
        if not spec.get("profiles") or active & set(spec["profiles"])
    }


def depends_on(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`depends_on` in its long form (the short list form has no conditions)."""
    value = spec.get("depends_on") or {}
    if isinstance(value, list):
        return {name: {} for name in value}
    return value


def required_dependencies(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`depends_on` without `required: false` entries, which compose skips when not enabled."""
    return {
        name: options
        for name, options in depends_on(spec).items()
        if options.get("required", True) is not False
    }


def is_one_shot(name: str) -> bool:
    """Init steps are named `<what>-init`; every other service is long-running."""
    return name.endswith("-init")


_PORT = re.compile(r"^(?:(?P<ip>[\d.]+):)?(?:(?P<host>[\d-]+):)?(?P<container>[\d-]+)(?:/\w+)?$")


@dataclass(frozen=True)
class Published:
    """One `ports:` entry."""

    ip: str | None
    host: int | None
    container: int


def published_ports(spec: dict[str, Any]) -> list[Published]:
    """The service's `ports:` entries (short syntax, as this repository writes them)."""
    out = []
    for entry in spec.get("ports", []):
        match = _PORT.match(str(entry))
        if not match:
            raise ValueError(f"unparsed port entry {entry!r}")
        host = match["host"]
        out.append(Published(match["ip"], int(host) if host else None, int(match["container"])))
    return out


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")


def interpolations(text: str) -> list[tuple[str, str, str]]:
    """`(name, operator, argument)` of every `${...}` in `text` (`$$` escapes skipped)."""
    return [
        (m["name"], m["op"] or "", m["arg"])
        for m in _INTERPOLATION.finditer(text.replace("$$", ""))
    ]


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """The service's `environment` as a mapping of strings."""
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>[bkmg]?)b?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def bytes_of(size: str | int) -> int:
    """`512m`, `1g`, `1536m` -> bytes (compose's byte-value syntax)."""
    match = _SIZE.match(str(size).strip())
    if not match:
        raise ValueError(f"unparsed size {size!r}")
    return int(float(match["number"]) * _UNITS[match["unit"].lower()])


def resolve(
    track: str, files: tuple[Path, ...] = (BASE,), *, env_file: Path = ENV_EXAMPLE
) -> dict[str, Any]:
    """The model `docker compose --profile <track's profile> config` prints, from compose-go.

    Interpolated with `env_file` only, profiles applied, paths resolved: what each container
    of the track would actually get.

    Raises:
        FileNotFoundError: the tool is not built (`./quick_start.sh --setup-only` builds it).
        RuntimeError: compose's loader refused the files; the message is its own.
    """
    if not RESOLVER.exists():
        raise FileNotFoundError(
            f"{RESOLVER} is missing: `./quick_start.sh --setup-only` builds tools/compose-resolve"
        )
    args = [str(RESOLVER), "--env-file", str(env_file)]
    for path in files:
        args += ["-f", str(path)]
    for profile in TRACK_PROFILES[track]:
        args += ["--profile", profile]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return cast(dict[str, Any], json.loads(result.stdout))
