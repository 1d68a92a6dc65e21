"""What a reader of the built book must get, as pure functions over pages and files.

The browser harness (``bookbrowser.py``) loads each page in Chromium and hands over what the browser saw:
the rendered DOM (after MathJax ran), the state of every image, the console messages and the failed
requests. The functions here turn that into a list of problems, one readable line each; an empty list
means the page is fine. They take plain strings and dictionaries, so they are tested on small crafted
pages without a browser (``test_browser_checkers.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote, urljoin, urlsplit

import yaml
from bs4 import BeautifulSoup

from tools.notebooks import launch_urls, toc_docnames

__all__ = [
    "Page",
    "toc_pages",
    "expected_launch_urls",
    "math_problems",
    "image_problems",
    "console_problems",
    "link_problems",
    "launch_problems",
    "ids_in_file",
]

# Elements whose text a reader sees as code, not prose: TeX-looking text there is legitimate.
CODE_ELEMENTS = {"pre", "code", "kbd", "samp", "tt", "textarea"}
CODE_CLASSES = {"highlight"}
# Elements that are never shown as text.
INVISIBLE_ELEMENTS = ["script", "style", "noscript", "template", "head", "svg", "math"]

# Raw TeX a reader must never see in prose: display and inline delimiters, environments, commands.
RAW_TEX = re.compile(
    r"\$\$"  # display delimiters
    r"|\\[()\[\]]"  # \( \) \[ \]
    r"|\\begin\{|\\end\{"  # environments
    r"|\\[A-Za-z]{2,}"  # commands: \frac, \nabla, \mathbb, \Normal, ...
    r"|(?<![\w$])\$[^\s$][^$\n]{0,200}?(?<=[^\s$])\$(?![\w$])"  # $x$, $a - \mu$
    r"|(?<![\w$])\$[^\s$]\$(?![\w$])"  # one-character inline formula: $a$
)


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of the table of contents: its source, its HTML file, and whether it is a notebook."""

    docname: str  # "book/getting_started", as in _toc.yml without the suffix
    source: pathlib.Path  # the .ipynb or .md it is built from
    html: pathlib.Path  # where the build writes it

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"


def load_config(path: pathlib.Path) -> dict:
    """A Jupyter Book configuration file (a folder means its _config.yml)."""
    path = path / "_config.yml" if path.is_dir() else path
    return yaml.safe_load(path.read_text())


def toc_entries(root: pathlib.Path) -> list[str]:
    """Every file of _toc.yml (root first), without suffix, in reading order."""
    return toc_docnames(root)


def toc_pages(root: pathlib.Path, html_root: pathlib.Path) -> list[Page]:
    """The pages of _toc.yml with their sources; a listed page with no source raises (the build would fail)."""
    pages = []
    for docname in toc_entries(root):
        sources = [root / f"{docname}{ext}" for ext in (".ipynb", ".md")]
        source = next((s for s in sources if s.exists()), None)
        if source is None:
            raise FileNotFoundError(f"_toc.yml lists {docname}, but neither {docname}.ipynb nor .md exists")
        pages.append(Page(docname=docname, source=source, html=html_root / f"{docname}.html"))
    return pages


def expected_launch_urls(config: dict, docname: str) -> dict[str, str]:
    """The Binder and Colab addresses a notebook page must link to, from _config.yml alone (built by tools.notebooks)."""
    prefix = config["repository"].get("path_to_book", "").strip("/")
    return launch_urls(config, f"{prefix}/{docname}.ipynb" if prefix else f"{docname}.ipynb")


# MathJax draws each glyph as an empty <mjx-c class="mjx-c1D44E"></mjx-c> (the glyph comes from its
# style sheet): most of a typeset page's markup, none of its text. Both are dropped before parsing,
# which is then several times faster.
_GLYPHS_AND_STYLES = re.compile(r"<mjx-c\b[^>]*>\s*</mjx-c>|<style\b[^>]*>.*?</style>", re.S)


def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(_GLYPHS_AND_STYLES.sub("", html), "html.parser")


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_code(element) -> bool:
    return any(
        parent.name in CODE_ELEMENTS or CODE_CLASSES.intersection(parent.get("class") or [])
        for parent in [element, *element.parents]
        if parent.name != "[document]"
    )


def math_problems(html: str) -> list[str]:
    """Formulas MathJax left untypeset or typeset with an error, and raw TeX visible in the prose.

    Every ``.math`` element (Sphinx writes one per formula) must hold an ``mjx-container``. Inside it,
    MathJax marks a formula it could not parse with ``data-mjx-error`` (``mjx-merror``), and writes an
    undefined macro as red text (its ``noundefined`` extension: ``<mtext mathcolor="red">\\name``). And no
    TeX delimiter or command may remain in the text a reader sees, outside code.
    """
    soup = _soup(html)
    problems = []
    for formula in soup.select(".math"):
        if formula.find("mjx-container") is None:
            problems.append(f"formula not typeset: {_shorten(formula.get_text())!r}")
    for container in soup.find_all("mjx-container"):
        # find_all rather than CSS selectors: a reference page holds hundreds of formulas.
        marked = container.find_all(attrs={"data-mjx-error": True}) + container.find_all("mjx-merror")
        errors = {e.get("data-mjx-error") or e.get_text() for e in marked}
        undefined = {t.get_text() for t in container.find_all("mtext", attrs={"mathcolor": "red"})}
        if not undefined and container.find_all("mjx-mtext", style=re.compile(r"color:\s*red")):
            undefined = {"(red text)"}
        if errors or undefined:
            where = _shorten(_block_text(container))
            problems += [f"MathJax could not typeset a formula: {error!r} (in {where!r})" for error in sorted(errors)]
            problems += [f"MathJax could not typeset a formula: undefined macro {name!r} (in {where!r})"
                         for name in sorted(undefined)]
    for hidden in soup.find_all([*INVISIBLE_ELEMENTS, "mjx-container"]):
        hidden.decompose()
    for text in soup.find_all(string=True):
        if _is_code(text.parent):
            continue
        for match in RAW_TEX.finditer(str(text)):
            problems.append(f"raw TeX {match.group(0)!r} visible in: {_shorten(str(text))!r}")
    return problems


def _block_text(element) -> str:
    """The text of the paragraph-like element around ``element``, to say where a formula is."""
    block = element.find_parent(["p", "li", "td", "th", "dd", "dt", "div", "section"]) or element
    # The visual rendering repeats what the assistive MathML says; keep the latter.
    return " ".join(text for text in block.find_all(string=True) if text.find_parent("mjx-math") is None)


def image_problems(images: Iterable[dict]) -> list[str]:
    """Images that did not load: each record has ``src``, ``complete`` and ``naturalWidth`` as in the DOM."""
    return [
        f"image did not load: {image.get('src')!r}"
        for image in images
        if not image.get("complete") or not image.get("naturalWidth")
    ]


def console_problems(
    console: Iterable[dict], page_errors: Iterable[str], failed_requests: Iterable[dict], blocked: Sequence[str]
) -> list[str]:
    """JavaScript errors and failed loads of the book's own files.

    ``console`` holds the browser's console messages (``type``, ``text``, ``url`` of their source);
    ``failed_requests`` the requests that failed (``url``, ``failure``) or were answered with an error
    status; ``blocked`` the third-party addresses the test refused on purpose (the network is closed),
    whose failures are expected and are not problems of the book.
    """
    blocked = set(blocked)
    problems = []
    for message in console:
        if message.get("type") != "error":
            continue
        if message.get("url") in blocked:
            continue
        source = message.get("url") or "page"
        problems.append(f"console error: {_shorten(message.get('text', ''), 200)} (from {source})")
    problems += [f"JavaScript error: {_shorten(error, 200)}" for error in page_errors]
    for request in failed_requests:
        if request.get("url") in blocked:
            continue
        problems.append(f"failed to load {request.get('url')}: {request.get('failure')}")
    return problems


@functools.lru_cache(maxsize=None)
def ids_in_file(path: pathlib.Path) -> frozenset[str]:
    """Every anchor (``id`` or ``name``) of an HTML file on disk."""
    soup = _soup(path.read_text(encoding="utf-8", errors="replace"))
    return _ids(soup)


def _ids(soup: BeautifulSoup) -> frozenset[str]:
    found = {element["id"] for element in soup.find_all(id=True)}
    found |= {element["name"] for element in soup.find_all("a", attrs={"name": True})}
    return frozenset(found)


def link_problems(html: str, page_url: str, site_url: str, site_root: pathlib.Path) -> list[str]:
    """Links of a page into the site that point at a missing file or at a missing anchor.

    ``page_url`` is where the page was served, ``site_url`` the address of ``site_root`` on that server.
    Links are resolved as the browser resolves them; a link into the site must name an existing file
    under ``site_root`` and, with a fragment, an element of that file with that ``id``. The anchors of
    the page itself are read from its rendered DOM, those of other pages from their files.
    """
    soup = _soup(html)
    own_ids = _ids(soup)
    site = urlsplit(site_url)
    base = soup.find("base", href=True)
    base_url = urljoin(page_url, base["href"]) if base else page_url
    problems = []
    seen = set()
    for anchor in soup.find_all("a", href=True):
        href = anchor["href"].strip()
        if not href or href.startswith(("javascript:", "mailto:", "tel:", "data:")):
            continue
        target = urlsplit(urljoin(base_url, href))
        if (target.scheme, target.netloc) != (site.scheme, site.netloc) or (href, page_url) in seen:
            continue
        seen.add((href, page_url))
        if not target.path.startswith(site.path):
            problems.append(f"link {href!r} leaves the site")
            continue
        relative = unquote(target.path[len(site.path):])
        file = site_root / relative
        if relative == "" or relative.endswith("/") or file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            problems.append(f"link {href!r} points at a missing file {file.relative_to(site_root)}")
            continue
        if not target.fragment:
            continue
        fragment = unquote(target.fragment)
        same_page = urlsplit(page_url)._replace(fragment="").geturl() == target._replace(fragment="").geturl()
        ids = own_ids if same_page else (ids_in_file(file) if file.suffix == ".html" else frozenset())
        if fragment not in ids:
            problems.append(f"link {href!r}: no element with id {fragment!r} in {file.relative_to(site_root)}")
    return problems


def launch_problems(html: str, expected: dict[str, str], thebe: bool) -> list[str]:
    """Missing or wrong launch buttons of a notebook page.

    ``expected`` maps a service ("Binder", "Colab") to the exact address its button must open; a page
    must link to each address, and to no other address of the same service. With ``thebe`` the page
    must also offer the button that makes its code live in place.
    """
    soup = _soup(html)
    links = [a["href"] for a in soup.find_all("a", href=True)]
    problems = []
    for service, url in expected.items():
        service_root = re.match(r"https?://[^/]+", url).group(0)
        # A launch link of a service is any link to it that opens a notebook, not a logo or a help page.
        to_service = [link for link in links if link.startswith(service_root) and link.endswith(".ipynb")]
        if url not in to_service:
            problems.append(f"no {service} launch button opening {url}")
        problems += [f"{service} launch button opens {link}, expected {url}" for link in to_service if link != url]
    if thebe and not soup.select('[onclick*="initThebe"]'):
        problems.append("no Live Code (Thebe) launch button")
    return problems
