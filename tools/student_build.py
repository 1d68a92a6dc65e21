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
- no Binder and Colab buttons and no Live Code (Thebe): all three start from the repository's
  notebooks, solutions included;
- the text that points readers to those buttons is replaced, on the pages of this edition only, by
  a sentence saying how to run the code without them (the :class:`StudentLaunchText` transform
  below, loaded as a Sphinx extension of this edition);
- "(student edition)" after the title.

Publish only ``<output>/_build/html``: the rest of ``<output>`` holds the record of the removed
solutions, used by the checks.

The build is as strict as the test build (``-W -n --keep-going``). Then every file of the output is
checked: as many solutions removed as the sources hold, no solution element, no notebook and no link
to one, no address of a launch service (Binder, Colab), no mention of the launch buttons, and no run
of 8 words of a removed solution that does not also occur outside the solutions of
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
from urllib.parse import urlparse

import yaml
from bs4 import BeautifulSoup
from sphinx.transforms import SphinxTransform

from notebooks import toc_docnames  # tools/notebooks.py, beside this script

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
EXTENSION = "pgnotes_sphinx"
LAUNCH_SERVICES = ("binderhub_url", "colab_url", "jupyterhub_url", "deepnote_url")
# How the book's text refers to its launch buttons; such a paragraph is replaced in this edition.
LAUNCH_BUTTON_TEXT = re.compile(r"rocket icon|launch button", re.IGNORECASE)
STUDENT_LAUNCH_TEXT = (
    "This edition opens no notebooks and runs no code in the browser: run a page's code in your own "
    "Jupyter or Python, with the pgnotes package installed as your course explains."
)
REMOVED_SOLUTIONS = "removed-solutions.json"
NGRAM = 8


def student_config(config: dict) -> dict:
    """_config.yml turned into the student edition's configuration."""
    student = copy.deepcopy(config)
    student["title"] = f"{config.get('title', 'Book')} (student edition)"
    sphinx = student.setdefault("sphinx", {})
    sphinx.setdefault("local_extensions", {})[EXTENSION] = str(TOOLS)
    sphinx["local_extensions"][pathlib.Path(__file__).stem] = str(TOOLS)
    options = sphinx.setdefault("config", {})
    options["pgnotes_student_edition"] = True
    options["html_copy_source"] = False
    options["html_show_sourcelink"] = False
    # Without copies of the sources the theme's download button would point at nothing. The theme
    # options are merged into those Jupyter Book derives from _config.yml, not put in their place.
    sphinx["recursive_update"] = True
    options.setdefault("html_theme_options", {})["use_download_button"] = False
    launch = student.setdefault("launch_buttons", {})
    for service in LAUNCH_SERVICES:
        launch.pop(service, None)
    launch["thebe"] = False  # Live Code starts a Binder of the repository, solutions included
    sphinx["config"]["pgnotes_launch_hosts"] = launch_hosts(config)
    return student


def launch_hosts(config: dict) -> list[str]:
    """Host names of the launch services that _config.yml configures, e.g. ``mybinder.org``."""
    urls = [config.get("launch_buttons", {}).get(service) for service in LAUNCH_SERVICES]
    return sorted({urlparse(url).netloc for url in urls if url})


def _refers_to_launch(paragraph, hosts: list[str]) -> bool:
    from docutils import nodes

    if LAUNCH_BUTTON_TEXT.search(paragraph.astext()):
        return True
    return any(
        urlparse(reference.get("refuri", "")).netloc in hosts for reference in paragraph.findall(nodes.reference)
    )


class StudentLaunchText(SphinxTransform):
    """In the student edition, replace each paragraph that sends readers to the launch buttons."""

    default_priority = 60

    def apply(self, **kwargs) -> None:
        if not getattr(self.config, "pgnotes_student_edition", False):
            return
        from docutils import nodes

        hosts = list(self.config.pgnotes_launch_hosts)
        for paragraph in list(self.document.findall(nodes.paragraph)):
            if _refers_to_launch(paragraph, hosts):
                paragraph.replace_self(nodes.paragraph(text=STUDENT_LAUNCH_TEXT))


def setup(app):
    """Sphinx extension of the student edition (added to its configuration by :func:`student_config`)."""
    app.add_config_value("pgnotes_launch_hosts", [], "env")
    app.add_transform(StudentLaunchText)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


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


def leaks(
    html_root: pathlib.Path, removed: dict[str, list[str]], sources: dict[str, Source], hosts: list[str] = ()
) -> list[str]:
    """What of the solutions (or of the ways to the full notebooks) is in the built edition; empty when nothing is."""
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
    for path, text in texts.items():
        if path.suffix != ".html":  # the pages, not the libraries' own assets (thebe's default Binder)
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        for host in hosts:
            if host in raw:
                problems.append(f"{path.relative_to(html_root)}: points to {host}, which opens the full notebooks")
        if LAUNCH_BUTTON_TEXT.search(text):
            problems.append(f"{path.relative_to(html_root)}: mentions launch buttons this edition does not have")
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
    problems = leaks(html, removed, source_texts(), launch_hosts(config))
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
