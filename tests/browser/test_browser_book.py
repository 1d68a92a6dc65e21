"""Every page of the built book, opened in headless Chromium as a reader opens it.

Each page of _toc.yml is loaded from a local server; the checks are those of ``bookcheck``: MathJax
typeset every formula, every image loaded, no JavaScript error, every link into the site resolves,
and notebook pages launch in Binder and Colab. A screenshot of each page is saved under
_build/screenshots/ for a person to look at. The last test breaks a copy of a page in each of these
ways and asserts that every check notices.
"""

from __future__ import annotations

import pathlib
import re
import shutil

import bookcheck
import pytest
from bookbrowser import CONFIG, HTML, ROOT, SCREENSHOTS, BookServer

DOCNAMES = bookcheck.toc_entries(ROOT)
NOTEBOOK_DOCNAMES = [name for name in DOCNAMES if (ROOT / f"{name}.ipynb").exists()]
_visits: dict[str, object] = {}


@pytest.fixture
def page(request, built_pages) -> bookcheck.Page:
    return next(p for p in built_pages if p.docname == request.param)


@pytest.fixture
def visit(page, visitor, server):
    """The browser's view of the page, taken once per run (every check below reads the same visit)."""
    if page.docname not in _visits:
        url = server.url + page.html.relative_to(HTML).as_posix()
        _visits[page.docname] = visitor.visit(url, screenshot=SCREENSHOTS / f"{page.docname}.jpg")
    return _visits[page.docname]


def fail_with(problems: list[str], page: bookcheck.Page) -> None:
    if problems:
        pytest.fail(f"{page.html.relative_to(HTML)}:\n  " + "\n  ".join(problems), pytrace=False)


pages = pytest.mark.parametrize("page", DOCNAMES, indirect=True)


@pages
def test_every_formula_is_typeset(page, visit):
    problems = [visit.mathjax_problem] if visit.mathjax_problem else []
    fail_with(problems + bookcheck.math_problems(visit.html), page)


@pages
def test_every_image_loads(page, visit):
    fail_with(bookcheck.image_problems(visit.images), page)


@pages
def test_no_javascript_error_and_no_missing_file(page, visit):
    fail_with(bookcheck.console_problems(visit.console, visit.page_errors, visit.failed_requests, visit.blocked), page)


@pages
def test_every_link_into_the_site_resolves(page, visit, server):
    fail_with(bookcheck.link_problems(visit.html, visit.url, server.url, HTML), page)


@pytest.mark.parametrize("page", NOTEBOOK_DOCNAMES, indirect=True)
def test_notebook_pages_launch_in_binder_and_colab(page, visit, book_config):
    expected = bookcheck.expected_launch_urls(book_config, page.docname)
    thebe = bool(book_config.get("launch_buttons", {}).get("thebe"))
    # The book itself must launch; only another build (the student edition) may have no buttons.
    if CONFIG == ROOT / "_config.yml":
        assert set(expected) == {"Binder", "Colab"}, f"_config.yml must configure Binder and Colab: {expected}"
    elif not expected and not thebe:
        pytest.skip("this build has no launch buttons configured")
    # Each address opens the page's own notebook, at its path in the repository.
    assert all(url.endswith(f"/{page.source.relative_to(ROOT).as_posix()}") for url in expected.values())
    fail_with(bookcheck.launch_problems(visit.html, expected, thebe), page)


GENERATED = [name for name in ("genindex", "py-modindex", "search") if (HTML / f"{name}.html").exists()]


@pytest.mark.parametrize("name", GENERATED)
def test_generated_pages_load_without_errors(name, visitor, server, built_pages):
    """The index, module index and search page, which Sphinx writes beside the chapters."""
    seen = visitor.visit(server.url + f"{name}.html", screenshot=SCREENSHOTS / f"{name}.jpg")
    problems = (
        bookcheck.image_problems(seen.images)
        + bookcheck.console_problems(seen.console, seen.page_errors, seen.failed_requests, seen.blocked)
        + bookcheck.link_problems(seen.html, seen.url, server.url, HTML)
    )
    assert problems == [], f"{name}.html:\n  " + "\n  ".join(problems)


def test_search_finds_a_chapter_by_a_word_of_its_title(visitor, server, built_pages):
    chapter = next(p for p in built_pages if p.is_notebook)
    title = bookcheck.BeautifulSoup(chapter.html.read_text(), "html.parser").find("h1").get_text(" ")
    word = max(re.findall(r"[A-Za-z]{4,}", title), key=len)
    seen = visitor.visit(server.url + f"search.html?q={word}", wait_for="ul.search li a")
    assert seen.waited_in_vain is None, f"searching {word!r} found nothing"
    results = [a.get("href") for a in bookcheck.BeautifulSoup(seen.html, "html.parser").select("ul.search li a")]
    assert chapter.html.relative_to(HTML).as_posix() in results, (word, results)
    assert seen.page_errors == []


def test_screenshots_were_taken_of_every_page(built_pages, visitor, server):
    for page in built_pages:
        if page.docname not in _visits:
            url = server.url + page.html.relative_to(HTML).as_posix()
            _visits[page.docname] = visitor.visit(url, screenshot=SCREENSHOTS / f"{page.docname}.jpg")
    for page in built_pages:
        shot = SCREENSHOTS / f"{page.docname}.jpg"
        assert shot.is_file() and shot.stat().st_size > 10_000, f"no useful screenshot of {page.docname}: {shot}"


BREAKAGES = {
    # name: (HTML inserted at the end of the article, a line every check run together must report)
    "raw formula": ("<p>Left as text: $\\frac{a}{b}$ and $\\nabla f$.</p>", "raw TeX '$\\\\frac{a}{b}$'"),
    "undefined macro": ('<p><span class="math notranslate nohighlight">\\(\\undefinedmacro{x}\\)</span></p>',
                        "undefined macro '\\\\undefinedmacro'"),
    "TeX error": ('<p><span class="math notranslate nohighlight">\\(\\frac{a}\\)</span></p>',
                  "Missing argument for \\\\frac"),
    "image": ('<p><img alt="missing" src="no-such-figure.png"></p>', "image did not load"),
    "anchor": ('<p><a href="notation.html#no-such-anchor">x</a></p>', "no element with id 'no-such-anchor'"),
    "page": ('<p><a href="no-such-page.html">y</a></p>', "points at a missing file"),
    "script": ("<script>window.bookFunctionThatDoesNotExist();</script>", "bookFunctionThatDoesNotExist"),
}


def all_problems(seen, site_url, site, expected, thebe) -> list[str]:
    problems = [seen.mathjax_problem] if seen.mathjax_problem else []
    return (
        problems
        + bookcheck.math_problems(seen.html)
        + bookcheck.image_problems(seen.images)
        + bookcheck.console_problems(seen.console, seen.page_errors, seen.failed_requests, seen.blocked)
        + bookcheck.link_problems(seen.html, seen.url, site_url, site)
        + bookcheck.launch_problems(seen.html, expected, thebe=thebe)
    )


def test_every_check_notices_a_broken_page(built_pages, visitor, book_config, tmp_path):
    """Copies of a notebook page broken on purpose fail the checks; the intact copy passes them.

    One copy has every breakage of BREAKAGES and lacks its Colab button; another loads MathJax from an
    address the reader cannot reach, so that no formula is typeset.
    """
    notebook = next((p for p in built_pages if p.is_notebook and 'class="math' in p.html.read_text()), None)
    if notebook is None:
        pytest.fail("the book has no notebook page with formulas to break", pytrace=False)
    site = tmp_path / "html"
    shutil.copytree(HTML, site)
    relative = notebook.html.relative_to(HTML).as_posix()
    original = (site / relative).read_text()
    thebe = bool(book_config.get("launch_buttons", {}).get("thebe"))
    expected = bookcheck.expected_launch_urls(book_config, notebook.docname)
    without_colab = original
    if "Colab" in expected:
        without_colab = original.replace(f'href="{expected["Colab"]}"', 'href="#"')
        assert without_colab != original, "the page has no Colab launch button to remove"
    end = without_colab.rindex("</article>")
    broken = without_colab[:end] + "".join(html for html, _ in BREAKAGES.values()) + without_colab[end:]
    mathjax = re.search(r'<script[^>]*src="([^"]*mathjax[^"]*)"', original, re.I)
    assert mathjax, "the page loads no MathJax"
    unreachable = original.replace(mathjax.group(1), "https://mathjax.invalid/es5/tex-mml-chtml.js")
    for name, html in {"intact": original, "broken": broken, "unreachable": unreachable}.items():
        (site / relative).with_name(f"{name}.html").write_text(html)

    with BookServer(site) as copy:
        folder = copy.url + str(pathlib.PurePosixPath(relative).parent) + "/"
        found = {name: all_problems(visitor.visit(folder + f"{name}.html"), copy.url, site, expected, thebe)
                 for name in ("intact", "broken", "unreachable")}
    assert found["intact"] == []
    report = "\n".join(found["broken"])
    for name, (_, message) in BREAKAGES.items():
        assert message in report, f"the {name} breakage went unnoticed:\n{report}"
    if "Colab" in expected:
        assert f"no Colab launch button opening {expected['Colab']}" in found["broken"]
    assert "mathjax.invalid" in found["unreachable"][0], found["unreachable"]
    untypeset = [line for line in found["unreachable"] if line.startswith("formula not typeset")]
    formulas = len(bookcheck.BeautifulSoup(original, "html.parser").select(".math"))
    assert len(untypeset) == formulas > 0, found["unreachable"]
