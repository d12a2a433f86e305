"""The project's images rebuilt natively, as far as their Python goes: no Docker engine needed.

`build_image_venv` replays the stage of a Dockerfile that creates the image's virtualenv under a
stand-in for the container's root: it copies exactly the files that stage's `COPY`s name, and
runs its `python -m venv`, `pip install`, `ln -s`, `mkdir -p` and `python -c` steps as written
(with the project's Python 3.11 and pip's cache). `container_argv` turns a container's resolved
command into the commands it would run, with each executable mapped to its native stand-in, so a
test can run them with `--help`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from dataplatform.composefiles import ROOT

#: Python of the images' virtualenvs (every image pins Python 3.11, as pyproject.toml does).
PYTHON = shutil.which("python3.11") or sys.executable
#: The project's own virtualenvs: PySpark's install stands in for the Spark image's Spark
#: (the same release: a test checks the base image's tag), .venv-airflow for the Airflow
#: image's own environment (the same pins: a test checks the requirements).
PROJECT_VENV = ROOT / ".venv"
AIRFLOW_VENV = ROOT / ".venv-airflow"
#: Steps of an image's RUN lines that do not shape its Python environment.
IGNORED_STEPS = {"apt-get", "rm", "chown", "groupadd", "useradd", "mvn", "bash"}


def pyspark_home() -> Path:
    """The folder of the project's PySpark install (its bin/ holds spark-class)."""
    purelib = sysconfig.get_path("purelib", vars={"base": str(PROJECT_VENV)})
    return Path(purelib) / "pyspark"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """`(INSTRUCTION, arguments)` pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each stage, the `FROM` line first."""
    out: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(dockerfile):
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, args))
    return out


def env_assignments(args: str) -> dict[str, str]:
    """`ENV A=1 B=2` -> {A: 1, B: 2} (the `KEY=value` form the Dockerfiles use)."""
    return dict(item.partition("=")[::2] for item in shlex.split(args))


@dataclass
class ImageEnv:
    """An image's filesystem stand-in after its virtualenv stage ran."""

    root: Path
    #: ENV of the final stage, container paths unchanged.
    env: dict[str, str] = field(default_factory=dict)
    #: The final stage's WORKDIR and CMD.
    workdir: str = "/"
    cmd: list[str] = field(default_factory=list)
    #: Container folder of every virtualenv the Dockerfile creates.
    venvs: list[str] = field(default_factory=list)

    def host(self, container_path: str) -> Path:
        """Where a container path lives under the stand-in root."""
        return self.root / container_path.lstrip("/")

    def path_dirs(self) -> list[str]:
        """The container's PATH, `$PATH` standing for the base image's own."""
        return self.env.get("PATH", "$PATH").split(":")


def _absolute(workdir: str, path: str) -> str:
    return path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"


def _copy(sources: list[str], dest: str, root: Path) -> None:
    """`COPY a b dir/` (or `COPY a file`) from the repository into the stand-in root."""
    target = root / dest.lstrip("/")
    into_dir = dest.endswith("/") or len(sources) > 1
    for source in sources:
        origin = ROOT / source
        to = target / origin.name if into_dir else target
        to.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, to, dirs_exist_ok=True)
        else:
            shutil.copy2(origin, to)


#: What every base image has on its own PATH (`$PATH`): its Python and pip.
BASE_TOOLS = {"pip", "python", "python3"}


def _which(image: ImageEnv, path_dirs: list[str], name: str) -> str | None:
    """The container path `name` runs from: a virtualenv's bin on PATH, or None (the base's)."""
    if "/" in name:
        return name
    for directory in path_dirs:
        if directory == "$PATH":
            if name in BASE_TOOLS:
                return None
        elif (image.host(directory) / name).exists():
            return f"{directory}/{name}"
    return None


def build_image_venv(dockerfile: Path, root: Path) -> ImageEnv:
    """Replay `dockerfile`'s Python steps under `root`; raises on a step it does not know.

    Only steps run by an interpreter of a virtualenv the Dockerfile created are replayed; `pip`
    of the base image (the Airflow image's own environment) is left to `base_pip_installs`.
    """
    image = ImageEnv(root=root)
    for stage in stages(dockerfile):
        # A named stage feeds the final one through COPY --from: the jars (skipped) or the
        # virtualenv (the platform image's `build`, replayed in place).
        if " AS " in stage[0][1].upper() and not any(
            k == "RUN" and "-m venv" in a for k, a in stage
        ):
            continue
        image.env = {}
        workdir = "/"
        path_dirs = ["$PATH"]
        for keyword, args in stage[1:]:
            if keyword == "WORKDIR":
                workdir = _absolute(workdir, args)
                image.host(workdir).mkdir(parents=True, exist_ok=True)
            elif keyword == "ENV":
                assignments = env_assignments(args)
                image.env.update(assignments)
                if "PATH" in assignments:
                    path_dirs = assignments["PATH"].split(":")
            elif keyword == "CMD":
                image.cmd = json.loads(args)
            elif keyword == "COPY" and "--from=" not in args:
                *sources, dest = shlex.split(args)
                _copy(sources, _absolute(workdir, dest), root)
            elif keyword == "RUN":
                for step in re.split(r"\s*&&\s*", args):
                    _run_step(image, path_dirs, workdir, step)
        image.workdir = workdir
    return image


def _run(argv: list[str], cwd: Path) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{result.stdout}\n{result.stderr}")


def _run_step(image: ImageEnv, path_dirs: list[str], workdir: str, step: str) -> None:
    cwd = image.host(workdir)
    pth = re.fullmatch(r'echo (\S+) > "\$\(.*\)/(\S+\.pth)"', step)
    if pth:
        # The Spark image puts its Spark's PySpark on the path; natively, PySpark's install.
        assert pth[1] == "/opt/spark/python", f"no native stand-in for {pth[1]}"
        stand_in = image.root / "native-pyspark"
        stand_in.mkdir(exist_ok=True)
        link = stand_in / "pyspark"
        if not link.exists():
            link.symlink_to(pyspark_home())
        venv = image.host(image.venvs[-1])
        for site in venv.glob("lib/python3*/site-packages"):
            (site / pth[2]).write_text(f"{stand_in}\n")
        return
    argv = shlex.split(step)
    tool = argv[0]
    if tool in IGNORED_STEPS:
        return
    if "-m" in argv and argv[argv.index("-m") + 1] == "venv":
        created = argv[-1]
        _run([PYTHON, "-m", "venv", str(image.host(created))], cwd)
        image.venvs.append(created)
        return
    if tool == "ln" and argv[1] == "-s":
        link = image.host(argv[3])
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(image.host(argv[2]))
        return
    if tool == "mkdir":
        for path in argv[2:] if argv[1] == "-p" else argv[1:]:
            image.host(path).mkdir(parents=True, exist_ok=True)
        return
    if re.fullmatch(r"(\S*/)?(pip|python)(3(\.\d+)?)?", tool):
        where = _which(image, path_dirs, tool)
        if where is None:
            return  # the base image's interpreter: not this image's virtualenv
        host_tool = str(image.host(where))
        if argv[1:2] == ["install"]:
            # pip's cache on (the image disables it to stay small), no bytecode (saves minutes).
            args = [a for a in argv[2:] if a != "--no-cache-dir"]
            _run(
                [host_tool, "install", "-q", "--disable-pip-version-check", "--no-compile", *args],
                cwd,
            )
        elif argv[1:2] == ["-c"]:
            _run([host_tool, *argv[1:]], cwd)
        else:
            raise AssertionError(dockerfile_step_error(step))
        return
    raise AssertionError(dockerfile_step_error(step))


def dockerfile_step_error(step: str) -> str:
    """The message for a RUN step `build_image_venv` cannot replay."""
    return f"unknown Dockerfile step {step!r}: teach tests/images.py how it shapes the image"


def base_pip_installs(dockerfile: Path) -> list[list[str]]:
    """The arguments of every `pip install` run by the base image's own pip (not a venv's)."""
    out = []
    for stage in stages(dockerfile):
        path_dirs = ["$PATH"]
        args_env: dict[str, str] = {}
        for keyword, args in stage[1:]:
            if keyword == "ARG":
                name, _, default = args.partition("=")
                args_env[name] = default
            elif keyword == "ENV" and "PATH" in env_assignments(args):
                path_dirs = env_assignments(args)["PATH"].split(":")
            elif keyword == "RUN":
                for step in re.split(r"\s*&&\s*", args):
                    argv = shlex.split(step)
                    if argv[:2] == ["pip", "install"] and path_dirs[0] == "$PATH":
                        out.append([_expand(a, args_env) for a in argv[2:]])
    return out


def _expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: variables[m[1]], value)


def _shell_expand(word: str, env: dict[str, str]) -> str:
    """`${NAME}` and `$NAME` as the container's shell expands them (unset: empty)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], ""), word)


def container_argv(
    image: ImageEnv, spec: dict[str, object], env: dict[str, str]
) -> list[list[str]]:
    """The programs a container's command runs, each as argv with its executable's host path.

    A `bash -c` script is split at `&&`, its variables expanded from the container's `env`;
    shell built-ins (`umask`, `printf`) are dropped and `exec` is unwrapped. The Airflow image's
    entrypoint runs `airflow <command>` unless the command is a program of its own.
    """
    command = spec.get("command") or image.cmd
    assert isinstance(command, list)
    command = [str(part) for part in command]
    if str(spec.get("image", "")).startswith("dataplatform/airflow:") and command[0] not in {
        "bash",
        "python",
    }:
        command = ["airflow", *command]
    if command[:2] == ["bash", "-c"]:
        programs = [
            [_shell_expand(word, env) for word in shlex.split(part)]
            for part in re.split(r"\s*&&\s*", command[2])
        ]
    else:
        programs = [command]
    out = []
    for argv in programs:
        if argv[0] == "exec":
            argv = argv[1:]
        if argv[0] in {"umask", "printf"}:
            continue
        out.append([native_executable(image, argv[0]), *argv[1:]])
    return out


def native_executable(image: ImageEnv, name: str) -> str:
    """Where a container's executable lives natively: the image's venv, or its stand-in."""
    if name == "airflow":
        return str(AIRFLOW_VENV / "bin" / "airflow")
    if name.startswith("/opt/spark/bin/"):
        return str(pyspark_home() / "bin" / Path(name).name)
    where = _which(image, image.path_dirs(), name)
    assert where is not None, f"{name} is on no PATH entry the Dockerfile creates"
    return str(image.host(where))


#: Environment the base images set that the Dockerfiles rely on.
BASE_ENV = {"dataplatform/airflow": {"AIRFLOW_HOME": "/opt/airflow"}}


def container_env(image: ImageEnv, spec: dict[str, object], home: Path) -> dict[str, str]:
    """The environment a command of the container gets, its paths mapped to the stand-in."""
    name = str(spec.get("image", "")).partition(":")[0]
    env = {"HOME": str(home), "LANG": "C.UTF-8", **BASE_ENV.get(name, {})}
    env.update(image.env)
    environment = spec.get("environment") or {}
    assert isinstance(environment, dict)
    env.update({k: "" if v is None else str(v) for k, v in environment.items()})
    for key, value in list(env.items()):
        if value.startswith("/") and (image.host(value).exists() or image.host(value).is_symlink()):
            env[key] = str(image.host(value))
    # The native stand-ins on PATH: the image's virtualenvs where it puts them, then the
    # Airflow environment (the base of the Airflow image) and the host's own tools.
    path = [str(image.host(d)) if d != "$PATH" else "$PATH" for d in image.path_dirs()]
    base = [os.environ.get("PATH", "/usr/bin:/bin")]
    if name == "dataplatform/airflow":
        base.insert(0, str(AIRFLOW_VENV / "bin"))
    env["PATH"] = ":".join(":".join(base) if d == "$PATH" else d for d in path)
    env["SPARK_HOME"] = str(pyspark_home())
    env.pop("PYTHONPATH", None)
    return env
