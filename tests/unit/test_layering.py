"""The architecture written as a check: imports run one way and never in a loop.

`src/dataplatform` is the library; `fastapi_app`, `pyspark_jobs` and `airflow_dags` are the
deployables. The library never imports a deployable, a deployable never imports another, and no
two project modules import each other, directly or through others. Imports are read with `ast`
from the whole module body (imports inside functions count: they are how a layering breach
usually hides) and from module names passed to `importlib.import_module(...)`.

Starting a deployable as a separate process (`[sys.executable, "-m", "pyspark_jobs.landing"]`)
is how the CLI and the native runtime run the jobs: it is not an import, so the library may do
it, but a deployable may not launch another deployable's module, and every `-m` target must
exist (a stale launcher string fails here, not at run time).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Top-level package -> its folder. Airflow puts `airflow_dags/` itself on `sys.path`, so the
#: DAGs import their helpers as `common`: that package belongs to the `airflow_dags` layer.
PACKAGES: dict[str, Path] = {
    "dataplatform": ROOT / "src" / "dataplatform",
    "fastapi_app": ROOT / "fastapi_app",
    "pyspark_jobs": ROOT / "pyspark_jobs",
    "airflow_dags": ROOT / "airflow_dags",
}
LIBRARY = "dataplatform"
#: Module-name prefixes of the `airflow_dags` layer as the DAG processor imports them.
AIRFLOW_ALIASES = ("common",)

#: Imports that break the rules today, as (importer, imported) module pairs; each is removed as
#: its breach is fixed. It must end empty.
ALLOWED_BREACHES: frozenset[tuple[str, str]] = frozenset()
#: Import loops tolerated today, each as the sorted tuple of its modules; must end empty.
ALLOWED_LOOPS: frozenset[tuple[str, ...]] = frozenset()


@dataclass(frozen=True)
class Reference:
    """One module's reference to another: an import or a `python -m` launch."""

    importer: str
    target: str
    line: int
    launch: bool


def _module_name(package: str, folder: Path, path: Path) -> str:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if package == "airflow_dags":
        # DAG files are imported by Airflow as top-level modules of the dags folder.
        return ".".join(["airflow_dags", *parts]) if parts else "airflow_dags"
    return ".".join([package, *parts])


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            modules[_module_name(package, folder, path)] = path
    return modules


MODULES = _modules()


def _canonical(name: str) -> str:
    """The project's name for `name`, mapping the DAGs' `common` to `airflow_dags.common`."""
    head = name.split(".", 1)[0]
    if head in AIRFLOW_ALIASES:
        return f"airflow_dags.{name}"
    return name


def _resolve(name: str) -> str | None:
    """The most specific project module `name` refers to, or None for a third-party module."""
    name = _canonical(name)
    if name.split(".", 1)[0] not in PACKAGES:
        return None
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return name


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[importer].name == "__init__.py"
    base = importer.split(".")
    drop = node.level - 1 if is_package else node.level
    base = base[: len(base) - drop] if drop else base
    return ".".join([*base, node.module] if node.module else base)


def _string_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _references(importer: str, path: Path) -> Iterator[Reference]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Reference(importer, alias.name, node.lineno, launch=False)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(importer, node)
            for alias in node.names:
                # `from pkg import sub` imports the submodule when there is one.
                full = f"{module}.{alias.name}"
                target = full if _canonical(full) in MODULES else module
                yield Reference(importer, target, node.lineno, launch=False)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "import_module" and (target := _string_arg(node)):
                yield Reference(importer, target, node.lineno, launch=False)
        elif isinstance(node, (ast.List, ast.Tuple)):
            for flag, value in pairwise(node.elts):
                if (
                    isinstance(flag, ast.Constant)
                    and flag.value == "-m"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    yield Reference(importer, value.value, node.lineno, launch=True)


def _layer(module: str) -> str:
    return module.split(".", 1)[0]


def _project_references() -> list[Reference]:
    found = []
    for importer, path in MODULES.items():
        for ref in _references(importer, path):
            target = _resolve(ref.target)
            if target is not None:
                found.append(Reference(importer, target, ref.line, ref.launch))
    return found


REFERENCES = _project_references()


def _breach(ref: Reference) -> str | None:
    source, target = _layer(ref.importer), _layer(ref.target)
    if source == target:
        return None
    if ref.launch:
        return None if source == LIBRARY else "a deployable launches another deployable"
    if source == LIBRARY:
        return "the library imports a deployable"
    if target != LIBRARY:
        return "a deployable imports another deployable"
    return None


def test_imports_respect_layers_all_modules() -> None:
    breaches = {
        (ref.importer, ref.target): f"{MODULES[ref.importer]}:{ref.line}: {reason} ({ref.target})"
        for ref in REFERENCES
        if (reason := _breach(ref))
    }
    unexpected = sorted(text for pair, text in breaches.items() if pair not in ALLOWED_BREACHES)
    fixed = sorted(ALLOWED_BREACHES - breaches.keys())
    assert not unexpected, "imports against the layering:\n" + "\n".join(unexpected)
    assert not fixed, f"fixed breaches still on the allow-list (remove them): {fixed}"


def test_launch_targets_exist_all_modules() -> None:
    missing = sorted(
        f"{MODULES[ref.importer]}:{ref.line}: python -m {ref.target}"
        for ref in REFERENCES
        if ref.launch and ref.target not in MODULES
    )
    assert not missing, "launches of modules that do not exist:\n" + "\n".join(missing)


def _loops(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(tuple(sorted(component)))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_imports_form_no_loop_all_modules() -> None:
    edges: dict[str, set[str]] = {}
    for ref in REFERENCES:
        if not ref.launch and ref.target != ref.importer and ref.target in MODULES:
            edges.setdefault(ref.importer, set()).add(ref.target)
    loops = set(_loops(edges))
    unexpected = sorted(loops - ALLOWED_LOOPS)
    fixed = sorted(ALLOWED_LOOPS - loops)
    assert not unexpected, f"import loops: {unexpected}"
    assert not fixed, f"fixed loops still on the allow-list (remove them): {fixed}"


def test_reader_sees_imports_inside_functions_sample(tmp_path: Path) -> None:
    # The scan must not be hollow: an import inside a function, an `import_module` name and a
    # `-m` launch are all read.
    source = (
        "def f():\n"
        "    from pyspark_jobs.lake import Lake\n"
        "    importlib.import_module('fastapi_app.app.main')\n"
        "    return [sys.executable, '-m', 'pyspark_jobs.landing']\n"
    )
    tree_path = tmp_path / "sample.py"
    MODULES["dataplatform._layering_sample"] = tree_path
    try:
        tree_path.write_text(source, encoding="utf-8")
        refs = list(_references("dataplatform._layering_sample", tree_path))
    finally:
        del MODULES["dataplatform._layering_sample"]
    assert [(r.target, r.launch) for r in refs] == [
        ("pyspark_jobs.lake", False),
        ("fastapi_app.app.main", False),
        ("pyspark_jobs.landing", True),
    ]
