"""Checks that keep the course's frame honest: table of contents, notebooks, packaging, Binder."""

from __future__ import annotations

import importlib
import json
import pathlib
import pkgutil
import re
import subprocess
import sys

import nbformat
import pytest
import yaml

import pgnotes
from tools import notebooks as notebook_tool

ROOT = pathlib.Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

NOTEBOOKS = sorted(p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())

# Conda-forge names of the runtime packages whose PyPI name differs.
CONDA_TO_PYPI = {"pytorch-cpu": "torch", "pytorch": "torch", "matplotlib-base": "matplotlib"}
# Conda-only entries of environment.yml that are not runtime requirements of the package.
BINDER_EXTRAS = {"python", "pip", "ipykernel", "notebook", "jupyterlab"}


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~ \[;]", spec.strip(), maxsplit=1)[0].lower()


def test_there_are_notebooks_to_test():
    assert NOTEBOOKS, "book/ holds no notebook: nbval would have nothing to execute"


def test_every_notebook_is_in_the_toc_and_every_entry_exists():
    entries = notebook_tool.toc_docnames(ROOT)
    listed = set(entries)
    for notebook in NOTEBOOKS:
        key = notebook.relative_to(ROOT).with_suffix("").as_posix()
        assert key in listed, f"{key}.ipynb is not listed in _toc.yml"
    for entry in entries:
        candidates = [ROOT / f"{pathlib.PurePosixPath(entry).with_suffix('')}{ext}" for ext in (".ipynb", ".md")]
        assert any(c.exists() for c in candidates), f"_toc.yml lists {entry}, which does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executed_in_order_without_errors_or_stderr(path):
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), (
        f"{path.name}: cells not executed top to bottom in a fresh kernel (counts {counts}); run `make notebooks`"
    )
    for index, cell in enumerate(code_cells):
        for output in cell.outputs:
            assert output.output_type != "error", f"{path.name}: code cell {index} holds an error output"
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"{path.name}: code cell {index} writes to stderr: {output.text[:200]!r}"
            )
            shown = json.dumps(output.get("text", "")) + json.dumps(output.get("data", {}).get("text/plain", ""))
            leak = re.search(r"(/root/|/tmp/|/work/|/home/\w+/|site-packages)", shown)
            assert not leak, f"{path.name}: code cell {index} output shows a machine path {leak.group(0)!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_first_cell_installs_only_on_colab_and_macros_follow(path):
    nb = nbformat.read(path, as_version=4)
    assert notebook_tool.is_in_sync(nb, CONFIG), f"{path.name}: generated cells out of date; run `make sync`"
    first = nb.cells[0]
    assert first.cell_type == "code"
    assert 'if "google.colab" in sys.modules:' in first.source
    # Outside Colab the cell must do nothing visible.
    assert first.outputs == []
    # The install target follows the repository setting.
    assert notebook_tool.install_target(CONFIG) in first.source


def test_readme_links_follow_the_repository_setting():
    readme = (ROOT / "README.md").read_text()
    assert notebook_tool.sync_readme(readme, CONFIG) == readme, "README links out of date; run `make sync`"
    owner, name = notebook_tool.github_owner_and_name(CONFIG)
    assert f"https://{owner.lower()}.github.io/{name}/" in readme


def test_environment_yml_and_pyproject_name_the_same_runtime_packages():
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)\]", pyproject, re.S | re.M).group(1)
    runtime = {requirement_name(s) for s in re.findall(r'"([^"]+)"', block)}
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in environment["channels"]
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    names = {requirement_name(d) for d in conda}
    binder_runtime = {CONDA_TO_PYPI.get(n, n) for n in names if n not in BINDER_EXTRAS}
    assert binder_runtime == runtime, f"environment.yml {sorted(binder_runtime)} != pyproject {sorted(runtime)}"
    assert "pytorch-cpu" in names, "Binder must install the CPU-only PyTorch build"
    python = next(d for d in conda if requirement_name(d) == "python")
    assert python.startswith("python=3."), "environment.yml must pin the Python version"
    assert not any(isinstance(d, dict) for d in environment["dependencies"]), (
        "a pip: section in environment.yml does not install the package on Binder; postBuild does"
    )


def test_postbuild_installs_the_package_without_dependencies():
    post_build = (ROOT / "postBuild").read_text()
    assert re.search(r"^pip install --no-deps -e \.$", post_build, re.M)


def test_constraints_pin_exact_versions_and_the_cpu_torch():
    lines = [
        line.strip()
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^\s=]+", line) for line in lines), "every line must be NAME==VERSION"
    pinned = {requirement_name(line): line.split("==")[1] for line in lines}
    assert pinned["torch"] == "2.13.0"
    for name in ("jupyter-book", "numpy", "sympy", "matplotlib", "nbval", "pytest"):
        assert name in pinned, f"{name} is not pinned"
    assert pinned["jupyter-book"].startswith("1."), "the book needs Jupyter Book 1.x"


def test_package_imports_and_has_the_pyproject_version():
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert pgnotes.__version__ == version
    assert (ROOT / "src" / "pgnotes" / "py.typed").exists()


def public_modules() -> list[str]:
    """Every public module but the deprecated aliases kept for one release."""
    names = [f"pgnotes.{m.name}" for m in pkgutil.iter_modules(pgnotes.__path__) if not m.name.startswith("_")]
    return sorted(n for n in names if not (importlib.import_module(n).__doc__ or "").startswith("Deprecated"))


def test_long_modules_say_why():
    # One screen of ideas per module: past about 500 lines the docstring must give the reason.
    for path in sorted((ROOT / "src" / "pgnotes").rglob("*.py")):
        lines = path.read_text().count("\n")
        if lines > 520:
            module = importlib.import_module("pgnotes." + path.relative_to(ROOT / "src" / "pgnotes").with_suffix("").as_posix().replace("/", "."))
            assert "longer than most" in (module.__doc__ or ""), f"{path.name} has {lines} lines and no stated reason"


def test_make_book_changes_no_tracked_file():
    # The main command renders; regenerating notebook cells is `make sync`, checked by the sync tests above.
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^book:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "sync" not in recipe and "execute" not in recipe, recipe


def test_api_page_documents_every_public_module():
    api = (BOOK / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (pgnotes\.\w+)", api, re.M))
    assert public_modules(), "pgnotes has no public module"
    assert documented == set(public_modules())
    for name in public_modules():
        module = importlib.import_module(name)
        assert module.__doc__, f"{name} has no module docstring"
        for attribute in module.__all__:
            assert getattr(module, attribute).__doc__, f"{name}.{attribute} has no docstring"


def test_book_configuration():
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert (ROOT / CONFIG["bibtex_bibfiles"][0]).exists()
    launch = CONFIG["launch_buttons"]
    assert launch["binderhub_url"] and launch["colab_url"] and launch["thebe"] is True
    extensions = CONFIG["sphinx"]["extra_extensions"]
    for extension in ("sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx_exercise", "sphinx_togglebutton"):
        assert extension in extensions
    assert CONFIG["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"


def write_notebook(path: pathlib.Path, source: str, output_text: str) -> None:
    cell = nbformat.v4.new_code_cell(source)
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output_text)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def run_nbval(path: pathlib.Path) -> subprocess.CompletedProcess:
    """Run nbval on one notebook with the options of `make test-notebooks`."""
    makefile = (ROOT / "Makefile").read_text()
    assert "--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg" in makefile
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), str(path)],
        capture_output=True, text=True, cwd=path.parent, timeout=300,
    )


def test_nbval_is_strict_a_changed_printed_number_fails(tmp_path):
    notebook = tmp_path / "strict.ipynb"
    write_notebook(notebook, "print(6 * 7)", "42\n")
    passing = run_nbval(notebook)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    write_notebook(notebook, "print(6 * 8)", "42\n")
    failing = run_nbval(notebook)
    assert failing.returncode != 0, "nbval accepted an output that differs from the committed one"
    assert "48" in failing.stdout
