#!/usr/bin/env python3
"""Build the student edition of the book (no solutions) into _build/student/_build/html, and check it.

Usage (from the repository root)::

    python tools/student_build.py [--output _build/student]

For instructors who hand out the book before an assignment is due. The configuration is
``_config.yml`` with these changes, written to ``<output>/_config.yml`` at each build (so the two
editions never drift apart):

- ``pgnotes_student_edition: true``: the ``pgnotes_sphinx`` extension (tools/pgnotes_sphinx.py)
  removes every ``{solution}`` and every gated ``{solution-start}`` ... ``{solution-end}`` block,
  notebook code cells included;
- no copies of the sources (``html_copy_source: false``) and no download button: the downloadable
  .ipynb would carry the solutions;
- no Binder and Colab buttons: they open the repository's notebooks, solutions included (Live Code
  stays: it runs the cells of the page, which holds none);
- "(student edition)" after the title.

The build is as strict as the test build (``-W -n --keep-going``). Then every file of the output is
checked: as many solutions removed as the sources hold, no solution element, no notebook and no link
to one, and no run of 8 words of a removed solution that does not also occur outside the solutions of
its page's source. Exits with status 1 on any warning or leak.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import pathlib
import re
import subprocess
import sys

import yaml
from bs4 import BeautifulSoup

from notebooks import toc_docnames  # tools/notebooks.py, beside this script

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
EXTENSION = "pgnotes_sphinx"
REMOVED_SOLUTIONS = "removed-solutions.json"
NGRAM = 8


def student_config(config: dict) -> dict:
    """_config.yml turned into the student edition's configuration."""
    student = copy.deepcopy(config)
    student["title"] = f"{config.get('title', 'Book')} (student edition)"
    sphinx = student.setdefault("sphinx", {})
    sphinx.setdefault("local_extensions", {})[EXTENSION] = str(TOOLS)
    options = sphinx.setdefault("config", {})
    options["pgnotes_student_edition"] = True
    options["html_copy_source"] = False
    options["html_show_sourcelink"] = False
    # Without copies of the sources the theme's download button would point at nothing. The theme
    # options are merged into those Jupyter Book derives from _config.yml, not put in their place.
    sphinx["recursive_update"] = True
    options.setdefault("html_theme_options", {})["use_download_button"] = False
    launch = student.setdefault("launch_buttons", {})
    for service in ("binderhub_url", "colab_url", "jupyterhub_url", "deepnote_url"):
        launch.pop(service, None)
    return student


def tokens(text: str) -> list[str]:
    """Words as a reader would copy them: letters, digits and underscores, lower case."""
    return re.findall(r"[a-z0-9_]+", text.lower())


def ngrams(words: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def fingerprints(removed: list[str], outside: str) -> set[tuple[str, ...]]:
    """Word runs of the removed solutions that do not occur outside the solutions in the sources.

    A run must hold at least three real words (three letters or more): runs of symbols and numbers,
    such as those of a formula ("2 sigma 2 d"), recur across a book without being a solution.
    """
    kept = f" {' '.join(tokens(outside))} "
    return {
        gram
        for solution in removed
        for gram in ngrams(tokens(solution))
        if sum(len(word) >= 3 and not word.isdigit() for word in gram) >= 3 and f" {' '.join(gram)} " not in kept
    }


def visible_text(path: pathlib.Path) -> str:
    """Everything of an output file a reader could see or search: the text of a page, a script's source."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".html":
        return raw
    soup = BeautifulSoup(raw, "html.parser")
    return soup.get_text(" ")


def leaks(html_root: pathlib.Path, removed: dict[str, list[str]], sources: dict[str, Source]) -> list[str]:
    """What of the solutions is still in the built edition; empty when nothing is."""
    problems = []
    for doc, source in sorted(sources.items()):
        if len(removed.get(doc, [])) != source.solutions:
            problems.append(f"{doc}: {source.solutions} solutions in the source, {len(removed.get(doc, []))} removed")
    files = [p for p in sorted(html_root.rglob("*")) if p.is_file()]
    notebooks = [p for p in files if p.suffix == ".ipynb"]
    problems += [f"{p.relative_to(html_root)}: a notebook in the student edition" for p in notebooks]
    texts = {p: visible_text(p) for p in files if p.suffix in (".html", ".js", ".txt", ".json")}
    for path in files:
        if path.suffix != ".html":
            continue
        soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
        if soup.find(class_="solution") is not None:
            problems.append(f"{path.relative_to(html_root)}: holds a solution element")
        for link in soup.find_all(href=re.compile(r"\.ipynb(?:[?#].*)?$")):
            problems.append(f"{path.relative_to(html_root)}: links to a notebook, solutions included: {link['href']}")
    words = {path: f" {' '.join(tokens(text))} " for path, text in texts.items()}
    # What the book says outside its solutions, on any page: repeating it is no leak.
    outside = "\n".join(source.outside for source in sources.values())
    for doc, solutions in sorted(removed.items()):
        marks = sorted(" ".join(g) for g in fingerprints(solutions, outside))
        # A solution can show up on its own page, or in what the site gathers from every page.
        where = [p for p in words if p == html_root / f"{doc}.html" or p.suffix != ".html"]
        for path in where:
            leaked = [mark for mark in marks if f" {mark} " in words[path]]
            if leaked:
                problems.append(f"{path.relative_to(html_root)}: text of a solution of {doc}: {leaked[0]!r}")
    return problems


@dataclasses.dataclass
class Source:
    """A page's source split into what lies inside solutions and what lies outside."""

    solutions: int = 0
    inside: str = ""
    outside: str = ""


FENCE = re.compile(r"^\s*(`{3,}|:{3,})\s*(\{[^}]+\})?")


def split_source(blocks: list[tuple[str, str]]) -> Source:
    """Split blocks (``("markdown", text)`` or ``("code", source and outputs)``) at the solutions.

    A ``{solution}`` directive is inside up to its closing fence; a ``{solution-start}`` opens a gate
    that the next ``{solution-end}`` closes, and everything between, code cells included, is inside.
    """
    source = Source()
    inside, outside = [], []
    gated = False
    for kind, text in blocks:
        if kind == "code":
            (inside if gated else outside).append(text)
            continue
        lines = text.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            fence = FENCE.match(line)
            directive = fence.group(2) if fence else None
            if directive in ("{solution}", "{solution-start}", "{solution-end}"):
                marker = fence.group(1)
                close = next((j for j in range(index + 1, len(lines))
                              if lines[j].strip() == marker[0] * len(lines[j].strip())
                              and len(lines[j].strip()) >= len(marker)), len(lines) - 1)
                body = lines[index + 1 : close]
                if directive == "{solution}":
                    source.solutions += 1
                    inside.extend(body)
                elif directive == "{solution-start}":
                    source.solutions += 1
                    gated = True
                else:
                    gated = False
                index = close + 1
                continue
            (inside if gated else outside).append(line)
            index += 1
    source.inside, source.outside = "\n".join(inside), "\n".join(outside)
    return source


def notebook_blocks(path: pathlib.Path) -> list[tuple[str, str]]:
    blocks = []
    for cell in json.loads(path.read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code":
            for output in cell.get("outputs", []):
                text += "\n" + "".join(output.get("text", ""))
                for kind, value in output.get("data", {}).items():
                    if kind.startswith("text/"):  # plain, LaTeX, HTML, Markdown; not images
                        text += "\n" + "".join(value)
            blocks.append(("code", text))
        elif cell["cell_type"] == "markdown":
            blocks.append(("markdown", text))
    return blocks


def source_texts() -> dict[str, Source]:
    """Each page of _toc.yml (by docname, book/x) split at its solutions."""
    files = toc_docnames(ROOT)
    sources = {}
    for entry in files:
        doc = str(pathlib.PurePosixPath(entry).with_suffix(""))
        notebook, markdown = ROOT / f"{doc}.ipynb", ROOT / f"{doc}.md"
        if notebook.exists():
            sources[doc] = split_source(notebook_blocks(notebook))
        elif markdown.exists():
            sources[doc] = split_source([("markdown", markdown.read_text())])
    return sources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=pathlib.Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    output = args.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config_path = output / "_config.yml"
    config_path.write_text(
        "# Generated by tools/student_build.py from _config.yml at each build: edit _config.yml, not this.\n"
        + yaml.safe_dump(student_config(config), sort_keys=False, allow_unicode=True)
    )
    jupyter_book = pathlib.Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book) if jupyter_book.exists() else "jupyter-book", "build", str(ROOT),
               "--config", str(config_path), "--path-output", str(output), "--builder", "html",
               "-W", "-n", "--keep-going"]
    print("$", " ".join(command), flush=True)
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        print("The student edition did not build without warnings.", file=sys.stderr)
        return 1
    html = output / "_build" / "html"
    removed = json.loads((output / "_build" / REMOVED_SOLUTIONS).read_text())
    problems = leaks(html, removed, source_texts())
    for problem in problems:
        print(f"LEAK {problem}", file=sys.stderr)
    if problems:
        return 1
    total = sum(len(v) for v in removed.values())
    print(f"Student edition: {total} solutions removed, none left in {html.relative_to(ROOT)}")
    print(f"Open file://{html}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
