"""The browser test of the built book runs on its own, after the build: ``pytest tests/browser``.

``pytest tests`` (the package tests, run before the book is built) collects only the fast checks of
the checker functions here, not the browser run over the book, which needs the built HTML. The browser
run is collected when this folder, or a file in it, is named on the command line.

Once collected, the browser run never passes silently without looking at the book: a missing build
fails; a browser that cannot be installed skips with the reason, except on CI (``CI=true``), where it
fails.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
BROWSER_RUN = "test_browser_book.py"

sys.path.insert(0, str(HERE))
import bookcheck  # noqa: E402
import bookbrowser  # noqa: E402
from bookbrowser import CONFIG, HTML, ROOT, VENDOR  # noqa: E402


def _named_on_command_line(config: pytest.Config) -> bool:
    """True when an argument of this pytest run is this folder or lies inside it."""
    invocation_dir = pathlib.Path(config.invocation_params.dir)
    for argument in config.args:
        path = (invocation_dir / argument.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: pathlib.Path, config: pytest.Config):
    if collection_path.name == BROWSER_RUN and not _named_on_command_line(config):
        return True
    return None


def unavailable(reason: str):
    """Skip with the reason on a developer's machine; fail on CI, where the browser test must run."""
    if bookbrowser.environment_says_ci():
        pytest.fail(f"the browser test must run on CI, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def built_pages() -> list[bookcheck.Page]:
    """The pages of _toc.yml as built in _build/html; a page missing from the build is a failure."""
    if not HTML.is_dir():
        pytest.fail(f"{HTML} does not exist: build the book first (jupyter-book build .)", pytrace=False)
    pages = bookcheck.toc_pages(ROOT, HTML)
    missing = [str(page.html.relative_to(HTML)) for page in pages if not page.html.is_file()]
    if missing:
        pytest.fail(f"pages of _toc.yml missing from {HTML}: {missing}; rebuild the book", pytrace=False)
    return pages


@pytest.fixture(scope="session")
def book_config() -> dict:
    return bookcheck.load_config(CONFIG)


@pytest.fixture(scope="session")
def browser_setup():
    """Chromium and the local MathJax copy, installed by tools/ensure_browser.sh when missing."""
    try:
        return bookbrowser.ensure_browser(VENDOR)
    except bookbrowser.BrowserUnavailable as reason:
        unavailable(str(reason))


@pytest.fixture(scope="session")
def server(built_pages):
    with bookbrowser.BookServer(HTML) as running:
        yield running


@pytest.fixture(scope="session")
def visitor(browser_setup, server):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the Python package playwright is not installed (pip install -c requirements/constraints.txt "
                    "-e '.[test]')")
    with sync_playwright() as playwright:
        running = bookbrowser.Visitor(playwright, browser_setup, server.url)
        try:
            yield running
        finally:
            running.close()


def pytest_terminal_summary(terminalreporter):
    if bookbrowser.BLOCKED_HOSTS:
        terminalreporter.section("third-party requests refused (the test runs offline; not counted as errors)")
        for host, count in sorted(bookbrowser.BLOCKED_HOSTS.items()):
            terminalreporter.write_line(f"{count:5d}  {host}")
