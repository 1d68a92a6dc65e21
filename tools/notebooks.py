#!/usr/bin/env python3
"""Keep the book's notebooks executed and their generated cells in sync with ``_config.yml``.

Usage (from the repository root)::

    python tools/notebooks.py sync   [NOTEBOOK ...]   # rewrite the generated cells only
    python tools/notebooks.py check  [NOTEBOOK ...]   # exit 1 if a generated cell is out of date
    python tools/notebooks.py execute [NOTEBOOK ...]  # sync, then run top to bottom in a fresh kernel

With no notebook given, every notebook under ``book/`` is used.

Two cells at the top of every chapter are generated from ``_config.yml``, so the repository URL and
the notation macros are set in one place:

1. a code cell that installs ``pgnotes`` from the repository when, and only when, the notebook runs
   on Google Colab (Binder and local set-ups install the package themselves);
2. a Markdown cell defining the MathJax macros of the course notation, so that formulas render in
   Jupyter and Colab as they do in the HTML book (which takes the macros from ``_config.yml`` and
   removes this cell).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import time

import nbformat
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CONFIG = ROOT / "_config.yml"
README = ROOT / "README.md"
LINKS_START = "<!-- links:start (generated from _config.yml by `make sync`; edit the repository setting there) -->"
LINKS_END = "<!-- links:end -->"
FIRST_CHAPTER = "book/getting_started.ipynb"

COLAB_CELL_ID = "pgnotes-colab-install"
MACROS_CELL_ID = "pgnotes-macros"
GENERATED_TAGS = ["remove-cell"]
KERNEL_NAME = "python3"
CELL_TIMEOUT_SECONDS = 600


def load_config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def install_target(config: dict) -> str:
    """The pip requirement that installs pgnotes from the configured repository and branch."""
    repository = config["repository"]
    url = repository["url"].rstrip("/")
    branch = repository.get("branch", "main")
    return f"git+{url}@{branch}"


def github_owner_and_name(config: dict) -> tuple[str, str]:
    url = config["repository"]["url"].rstrip("/")
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", url)
    if not match:
        raise ValueError(f"_config.yml: repository.url must look like https://github.com/OWNER/NAME, got {url}")
    return match.group(1), match.group(2)


def published_address(config: dict) -> str:
    """The GitHub Pages address of the book, derived from the repository setting."""
    owner, name = github_owner_and_name(config)
    return f"https://{owner.lower()}.github.io/{name}/"


def launch_urls(config: dict, path: str) -> dict[str, str]:
    """The Binder and Colab addresses that open ``path`` (relative to the repository root), from _config.yml alone.

    The one place these addresses are built: the README's badges, the notebooks'
    launch buttons (checked by the browser test) and the Colab cell all come from here.
    """
    owner, name = github_owner_and_name(config)
    branch = config["repository"].get("branch", "main")
    launch = config.get("launch_buttons", {})
    urls = {}
    if launch.get("binderhub_url"):
        interface = {"classic": "tree", "jupyterlab": "lab/tree"}[launch.get("notebook_interface", "classic")]
        binder = launch["binderhub_url"].rstrip("/")
        urls["Binder"] = f"{binder}/v2/gh/{owner}/{name}/{branch}?urlpath={interface}/{path}"
    if launch.get("colab_url"):
        colab = launch["colab_url"].rstrip("/")
        urls["Colab"] = f"{colab}/github/{owner}/{name}/blob/{branch}/{path}"
    return urls


def readme_links(config: dict) -> str:
    """The README's block of badges and addresses, derived from the repository setting."""
    owner, name = github_owner_and_name(config)
    repo = f"https://github.com/{owner}/{name}"
    binder = config["launch_buttons"]["binderhub_url"].rstrip("/")
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    workflow = f"{repo}/actions/workflows/book.yml"
    return "\n".join(
        [
            LINKS_START,
            f"[![test and publish]({workflow}/badge.svg)]({workflow})",
            f"[![Binder]({binder}/badge_logo.svg)]({launch_urls(config, 'book')['Binder']})",
            f"[![Open in Colab]({colab}/assets/colab-badge.svg)]({launch_urls(config, FIRST_CHAPTER)['Colab']})",
            "",
            f"Read the book online: {published_address(config)}",
            LINKS_END,
        ]
    )


def sync_readme(text: str, config: dict) -> str:
    start, end = text.index(LINKS_START), text.index(LINKS_END) + len(LINKS_END)
    return text[:start] + readme_links(config) + text[end:]


def colab_cell_source(config: dict) -> str:
    return (
        "# Installs pgnotes when this notebook runs on Google Colab; Binder and local set-ups have it.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        "    subprocess.run(\n"
        f'        [sys.executable, "-m", "pip", "install", "--quiet", "{install_target(config)}"],\n'
        "        check=True,\n"
        "    )"
    )


def macros_cell_source(config: dict) -> str:
    macros = config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    lines = [f"\\newcommand{{\\{name}}}{{{body}}}" for name, body in macros.items()]
    return "$$\n" + "\n".join(lines) + "\n$$"


def expected_generated_cells(config: dict) -> list[nbformat.NotebookNode]:
    colab = nbformat.v4.new_code_cell(colab_cell_source(config))
    colab.id = COLAB_CELL_ID
    colab.metadata["tags"] = list(GENERATED_TAGS)
    macros = nbformat.v4.new_markdown_cell(macros_cell_source(config))
    macros.id = MACROS_CELL_ID
    macros.metadata["tags"] = list(GENERATED_TAGS)
    return [colab, macros]


def toc_docnames(root: pathlib.Path = ROOT) -> list[str]:
    """Every page of ``_toc.yml`` (the root first), in reading order, without its suffix (``book/x``)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key, []))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return [
        str(pathlib.PurePosixPath(entry).with_suffix("")) if entry.endswith((".md", ".ipynb")) else entry
        for entry in found
    ]


def notebook_paths(args: list[str]) -> list[pathlib.Path]:
    if args:
        return [pathlib.Path(a).resolve() for a in args]
    return sorted(
        p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts
    )


def _is_generated(cell: nbformat.NotebookNode) -> bool:
    return cell.get("id") in (COLAB_CELL_ID, MACROS_CELL_ID)


def sync_notebook(nb: nbformat.NotebookNode, config: dict) -> bool:
    """Put the generated cells first, with current content; return True if anything changed."""
    expected = expected_generated_cells(config)
    current = [c for c in nb.cells if _is_generated(c)]
    rest = [c for c in nb.cells if not _is_generated(c)]
    changed = [c.get("id") for c in nb.cells[:2]] != [COLAB_CELL_ID, MACROS_CELL_ID] or any(
        old.source != new.source or old.metadata.get("tags") != new.metadata["tags"]
        for old, new in zip(current, expected)
    )
    if not changed:
        return False
    # Keep the execution record of the code cell: its source changes only in the URL, and it prints
    # nothing outside Colab, so the committed outputs stay what a fresh run produces.
    old_colab = next((c for c in current if c.get("id") == COLAB_CELL_ID), None)
    if old_colab is not None:
        expected[0].execution_count = old_colab.get("execution_count")
        expected[0].outputs = old_colab.get("outputs", [])
    nb.cells = expected + rest
    return True


def is_in_sync(nb: nbformat.NotebookNode, config: dict) -> bool:
    expected = expected_generated_cells(config)
    head = nb.cells[:2]
    return len(head) == 2 and all(
        old.get("id") == new.id
        and old.cell_type == new.cell_type
        and old.source == new.source
        and old.metadata.get("tags") == new.metadata["tags"]
        for old, new in zip(head, expected)
    )


def execute_notebook(path: pathlib.Path) -> float:
    """Run a notebook top to bottom in a fresh kernel, in its own folder, writing outputs in place."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL_NAME}
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        allow_errors=False,
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["sync", "check", "execute"])
    parser.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    config = load_config()
    paths = notebook_paths(args.notebooks)
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        rel = path.relative_to(ROOT)
        if args.command == "check":
            if not is_in_sync(nb, config):
                stale.append(rel)
            continue
        if sync_notebook(nb, config):
            nbformat.write(nb, path)
            print(f"synced   {rel}")
        if args.command == "execute":
            elapsed = execute_notebook(path)
            print(f"executed {rel} in {elapsed:.1f} s")
    if not args.notebooks:
        readme = README.read_text()
        synced = sync_readme(readme, config)
        if synced != readme:
            if args.command == "check":
                stale.append(README.relative_to(ROOT))
            else:
                README.write_text(synced)
                print("synced   README.md")
    if stale:
        for rel in stale:
            print(f"{rel}: its generated cells or links differ from _config.yml; run `make sync`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
