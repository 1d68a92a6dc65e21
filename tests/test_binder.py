"""Binder and Colab get the environment CI tests: same packages, compatible versions, same package install.

``tests/test_frame.py`` checks the names and the shape of these files; the checks here are about
versions and behaviour: every runtime package of environment.yml accepts the version CI pins,
postBuild really runs ``pip install --no-deps -e .`` from the repository root and stops on failure,
and each chapter's first cell installs pgnotes on Colab, and only there.
"""

from __future__ import annotations

import os
import pathlib
import re
import stat
import subprocess
import sys
import types

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text())
# conda-forge names whose PyPI name differs.
CONDA_TO_PYPI = {"pytorch-cpu": "torch", "pytorch": "torch", "matplotlib-base": "matplotlib"}
# Entries of environment.yml that run Jupyter on Binder rather than the course; CI has no pin for them.
JUPYTER_ONLY = {"python", "pip", "notebook", "jupyterlab"}


def conda_to_specifier(spec: str) -> SpecifierSet:
    """A conda match specification's version part as a PEP 440 specifier set.

    conda's ``=1.2`` (and ``1.2``, ``1.2.*``) is a prefix match, i.e. ``==1.2.*``; ``==1.2`` is exact;
    ``>=``, ``<=``, ``>``, ``<``, ``!=`` mean what they mean in PEP 440; a comma joins constraints. An
    ``|`` (either of two ranges) has no PEP 440 counterpart and is refused.
    """
    spec = spec.strip()
    if not spec or spec == "*":
        return SpecifierSet()
    if "|" in spec:
        raise ValueError(f"conda 'or' specifications are not supported here: {spec!r}")
    parts = []
    for part in spec.split(","):
        part = part.strip()
        match = re.fullmatch(r"(==|>=|<=|!=|>|<|~=|=)?\s*([0-9][0-9A-Za-z.*+!_-]*)", part)
        if not match:
            raise ValueError(f"not a conda version specification: {spec!r}")
        operator, version = match.group(1) or "=", match.group(2)
        if operator == "=":
            # Prefix match: 3.11 matches 3.11.0 and 3.11.9, not 3.110.
            operator, version = "==", version if version.endswith(".*") else f"{version.rstrip('*').rstrip('.')}.*"
        parts.append(f"{operator}{version}")
    return SpecifierSet(",".join(parts))


def conda_dependency(entry: str) -> tuple[str, SpecifierSet]:
    """Split ``pytorch-cpu>=2.1`` or ``python 3.11.*`` into a name and a version specifier."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", entry.split("::")[-1])
    name, version = match.group(1), match.group(2)
    return name.lower(), conda_to_specifier(version)


def pinned_versions() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def runtime_requirements() -> list[Requirement]:
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)\]", pyproject, re.S | re.M).group(1)
    return [Requirement(spec) for spec in re.findall(r'"([^"]+)"', block)]


def conda_dependencies() -> dict[str, SpecifierSet]:
    entries = [entry for entry in ENVIRONMENT["dependencies"] if isinstance(entry, str)]
    return dict(conda_dependency(entry) for entry in entries)


@pytest.mark.parametrize(
    ("conda", "inside", "outside"),
    [
        ("=3.11", ["3.11.0", "3.11.9"], ["3.10.14", "3.12.0", "3.110.0"]),
        ("3.11.*", ["3.11.4"], ["3.12.0"]),
        ("==2.1.0", ["2.1.0"], ["2.1.1"]),
        (">=2.1", ["2.1.0", "2.13.0"], ["2.0.1"]),
        (">=1.24,<3", ["1.26.4", "2.4.6"], ["1.23.5", "3.0.0"]),
        ("", ["0.1", "99"], []),
    ],
)
def test_conda_specifications_are_read_as_conda_reads_them(conda, inside, outside):
    specifier = conda_to_specifier(conda)
    assert all(specifier.contains(v) for v in inside), (conda, specifier)
    assert not any(specifier.contains(v) for v in outside), (conda, specifier)


def test_unsupported_conda_specifications_are_refused():
    with pytest.raises(ValueError):
        conda_to_specifier("1.2|1.4")
    with pytest.raises(ValueError):
        conda_to_specifier("latest")


def test_every_runtime_package_of_binder_accepts_the_version_ci_tests():
    pins = pinned_versions()
    conda = conda_dependencies()
    checked = []
    for name, specifier in conda.items():
        if name in JUPYTER_ONLY:
            continue
        pypi = canonicalize_name(CONDA_TO_PYPI.get(name, name))
        assert pypi in pins, f"environment.yml installs {name}, which CI does not pin in requirements/constraints.txt"
        assert specifier.contains(pins[pypi]), (
            f"environment.yml asks for {name}{specifier}, but CI tests {pypi}=={pins[pypi]}"
        )
        checked.append(pypi)
    runtime = {canonicalize_name(r.name) for r in runtime_requirements()}
    assert runtime <= set(checked), f"runtime packages missing from environment.yml: {sorted(runtime - set(checked))}"


def test_every_runtime_requirement_accepts_the_version_ci_pins():
    pins = pinned_versions()
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a runtime dependency but requirements/constraints.txt does not pin it"
        assert requirement.specifier.contains(pins[name]), f"pyproject asks {requirement}, CI pins {pins[name]}"


def test_binder_python_is_the_python_ci_runs_and_the_package_supports():
    python = conda_dependencies()["python"]
    workflows = "\n".join(p.read_text() for p in sorted((ROOT / ".github" / "workflows").glob("*.yml")))
    ci_pythons = set(re.findall(r"python-version:\s*[\"']?([0-9.]+)", workflows))
    assert ci_pythons, "no python-version in the workflows"
    for version in ci_pythons:
        assert python.contains(f"{version}.0") or python.contains(version), (
            f"Binder's python{python} is not the Python {version} that CI runs"
        )
    requires = re.search(r'^requires-python = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    lowest = re.search(r"==([0-9.]+)\.\*", str(python))
    assert lowest and SpecifierSet(requires).contains(f"{lowest.group(1)}.0"), (python, requires)


def write_fake_pip(folder: pathlib.Path, record: pathlib.Path, status: int) -> None:
    """A `pip` that writes its working directory and arguments to ``record`` and exits with ``status``."""
    pip = folder / "pip"
    pip.write_text(f'#!/bin/sh\nprintf "%s\\n" "$PWD" "$@" > "{record}"\nexit {status}\n')
    pip.chmod(pip.stat().st_mode | stat.S_IXUSR)


def run_post_build(tmp_path: pathlib.Path, status: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "pip-call.txt"
    write_fake_pip(bin_dir, record, status)
    # repo2docker runs postBuild from the repository root, with the environment's pip first on PATH.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / "postBuild")], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    return result, record.read_text().splitlines() if record.exists() else []


def test_post_build_installs_the_package_in_place_without_touching_the_solved_environment(tmp_path):
    assert (ROOT / "postBuild").read_text().startswith("#!"), "postBuild must start with a shebang line"
    result, call = run_post_build(tmp_path, status=0)
    assert result.returncode == 0, result.stdout + result.stderr
    assert call == [str(ROOT), "install", "--no-deps", "-e", "."]
    # What `-e .` installs from there is the package: src layout, found by setuptools under src/.
    assert (ROOT / "src" / "pgnotes" / "__init__.py").exists()


def test_post_build_fails_when_the_install_fails(tmp_path):
    result, call = run_post_build(tmp_path, status=1)
    assert call, "postBuild did not call pip"
    assert result.returncode != 0, "a failed install must fail the Binder build, not leave a broken image"


CHAPTERS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def install_target() -> str:
    """What Colab must install: the configured repository at the configured branch, as pip understands it."""
    repository = CONFIG["repository"]
    return f"git+{repository['url'].rstrip('/')}@{repository.get('branch', 'main')}"


def run_first_cell(path: pathlib.Path, monkeypatch, on_colab: bool, capsys) -> list[tuple[tuple, dict]]:
    """Execute a chapter's first cell as the kernel would; return the calls it made to subprocess.run."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    # pgnotes is not importable yet on a fresh Colab: the cell must not import it.
    monkeypatch.setitem(sys.modules, "pgnotes", None)
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    source = nbformat.read(path, as_version=4).cells[0].source
    exec(compile(source, f"{path.name}[0]", "exec"), {"__name__": "__main__"})  # noqa: S102
    assert capsys.readouterr() == ("", ""), "the first cell prints something"
    return calls


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_first_cell_installs_nothing_outside_colab(path, monkeypatch, capsys):
    assert run_first_cell(path, monkeypatch, on_colab=False, capsys=capsys) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_first_cell_installs_the_repository_with_the_kernels_pip_on_colab(path, monkeypatch, capsys):
    calls = run_first_cell(path, monkeypatch, on_colab=True, capsys=capsys)
    assert len(calls) == 1, calls
    (command,), options = calls[0]
    assert command[:4] == [sys.executable, "-m", "pip", "install"], command
    assert command[-1] == install_target() and command.count(install_target()) == 1, command
    assert options.get("check") is True, "a failed install must stop the notebook"
    # pip reads the target as a direct reference to the repository.
    requirement = Requirement(f"pgnotes @ {install_target()}")
    assert requirement.url == install_target()


def test_there_are_chapters_whose_first_cell_is_checked():
    assert CHAPTERS
