"""Serve the built book on the loopback interface and look at its pages in headless Chromium.

The book ships its own copy of MathJax (``_static/mathjax``, from the ``sphinx-mathjax-offline``
extension), so that its formulas render without a network. The test holds it to that: every request
of the browser goes through ``Visitor.route``, requests to the local server pass, and every other
request is refused and recorded, so that the failures it causes are not mistaken for problems of the
book, and a page that needed the network for its formulas fails.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import http.server
import os
import pathlib
import re
import subprocess
import threading

__all__ = ["BookServer", "Visit", "Visitor", "ensure_browser", "BrowserUnavailable", "CHROMIUM_ARGS"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The built book and its configuration; BOOK_HTML and BOOK_CONFIG point the test at another build of the
# same sources (the student edition: see tools/student_build.py), BOOK_SCREENSHOTS its screenshots elsewhere.
HTML = pathlib.Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()
CONFIG = pathlib.Path(os.environ.get("BOOK_CONFIG", ROOT / "_config.yml")).resolve()
SCREENSHOTS = pathlib.Path(os.environ.get("BOOK_SCREENSHOTS", ROOT / "_build" / "screenshots")).resolve()
# Where tools/ensure_browser.sh may keep what it installs.
VENDOR = ROOT / "_build" / "vendor"
ENSURE_BROWSER = ROOT / "tools" / "ensure_browser.sh"
# Exit status of tools/ensure_browser.sh when no browser can be installed on this machine.
UNAVAILABLE_STATUS = 3

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every third-party host a page tried to reach during this run, with the number of requests refused.
BLOCKED_HOSTS: collections.Counter = collections.Counter()
VIEWPORT = {"width": 1280, "height": 900}
SCREENSHOT_MAX_HEIGHT = 9000
# Generous limits for a loaded CI machine; a page of the book loads in well under a second.
LOAD_TIMEOUT_MS = 30_000
MATHJAX_TIMEOUT_MS = 30_000


class BrowserUnavailable(RuntimeError):
    """No browser can be installed on this machine."""


@dataclasses.dataclass(frozen=True)
class BrowserSetup:
    chromium: pathlib.Path


def ensure_browser(vendor: pathlib.Path) -> BrowserSetup:
    """Run tools/ensure_browser.sh (installs Chromium when missing) and read what it found."""
    result = subprocess.run(
        ["bash", str(ENSURE_BROWSER), str(vendor)], capture_output=True, text=True, timeout=900, check=False
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode == UNAVAILABLE_STATUS:
        raise BrowserUnavailable(output)
    if result.returncode != 0:
        raise RuntimeError(f"tools/ensure_browser.sh failed with status {result.returncode}:\n{output}")
    found = dict(re.findall(r"^(CHROMIUM)=(.+)$", result.stdout, re.M))
    return BrowserSetup(chromium=pathlib.Path(found["CHROMIUM"]))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the signature of the base class)
        pass


class BookServer:
    """A static file server for one folder, on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, root: pathlib.Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> BookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@dataclasses.dataclass
class Visit:
    """What the browser saw of one page."""

    url: str
    html: str = ""  # the rendered DOM, after MathJax
    images: list[dict] = dataclasses.field(default_factory=list)
    console: list[dict] = dataclasses.field(default_factory=list)
    page_errors: list[str] = dataclasses.field(default_factory=list)
    failed_requests: list[dict] = dataclasses.field(default_factory=list)
    blocked: list[str] = dataclasses.field(default_factory=list)
    mathjax_problem: str | None = None
    waited_in_vain: str | None = None  # the selector asked for, when no element matched it in time


# Waits for each image to load or fail (lazy ones are made eager first) and reports its state.
_IMAGES_JS = """
async () => {
  const images = Array.from(document.images);
  await Promise.all(images.map((img) => {
    img.loading = "eager";
    if (img.complete) return null;
    return new Promise((done) => {
      img.addEventListener("load", done, {once: true});
      img.addEventListener("error", done, {once: true});
      setTimeout(done, 10000);
    });
  }));
  return images.map((img) => ({src: img.currentSrc || img.getAttribute("src"), complete: img.complete,
                               naturalWidth: img.naturalWidth}));
}
"""


class Visitor:
    """Opens pages in one Chromium, each in a fresh page, with every request beyond the book's server refused."""

    def __init__(self, playwright, setup: BrowserSetup, server_url: str):
        self.setup = setup
        self.server_url = server_url
        # Playwright gives each launch a fresh temporary profile (user data directory).
        self.browser = playwright.chromium.launch(
            executable_path=str(setup.chromium), args=CHROMIUM_ARGS, headless=True
        )
        self.context = self.browser.new_context(viewport=VIEWPORT, service_workers="block")
        self._blocked: list[str] = []
        self.context.route("**/*", self.route)

    def close(self) -> None:
        self.context.close()
        self.browser.close()

    def route(self, route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "data:", "blob:")):  # the book's server (or a test's copy)
            route.continue_()
            return
        # Everything else would need a network: refused, MathJax included (the book ships its own).
        self._blocked.append(url)
        BLOCKED_HOSTS[re.match(r"[^:]+://[^/?#]*", url).group(0)] += 1
        route.abort("blockedbyclient")

    def visit(self, url: str, screenshot: pathlib.Path | None = None, wait_for: str | None = None) -> Visit:
        """Load a page, let MathJax finish (and ``wait_for`` match an element), and record what happened."""
        visit = Visit(url=url)
        self._blocked = visit.blocked
        page = self.context.new_page()
        page.on("console", lambda m: visit.console.append(
            {"type": m.type, "text": m.text, "url": (m.location or {}).get("url", "")}))
        page.on("pageerror", lambda error: visit.page_errors.append(f"{error.name}: {error.message}"))
        page.on("requestfailed", lambda r: visit.failed_requests.append({"url": r.url, "failure": r.failure}))
        page.on("response", lambda r: r.status >= 400 and visit.failed_requests.append(
            {"url": r.url, "failure": f"HTTP {r.status}"}))
        try:
            page.goto(url, wait_until="load", timeout=LOAD_TIMEOUT_MS)
            visit.mathjax_problem = self._wait_for_mathjax(page)
            if wait_for is not None:
                try:
                    page.wait_for_selector(wait_for, timeout=LOAD_TIMEOUT_MS)
                except Exception:  # noqa: BLE001 (Playwright's TimeoutError; reported by the caller)
                    visit.waited_in_vain = wait_for
            visit.images = page.evaluate(_IMAGES_JS)
            page.evaluate("() => document.fonts.ready.then(() => true)")
            visit.html = page.content()
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                # The whole page, down to SCREENSHOT_MAX_HEIGHT: a long reference page would take
                # seconds to capture and make an image too large to open.
                height = page.evaluate("() => document.documentElement.scrollHeight")
                clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": min(height, SCREENSHOT_MAX_HEIGHT)}
                # JPEG: several times faster to encode than PNG at this size, and plenty to look at.
                page.screenshot(path=str(screenshot), type="jpeg", quality=85, full_page=True, clip=clip,
                                animations="disabled")
        finally:
            page.close()
        return visit

    def _wait_for_mathjax(self, page) -> str | None:
        """Wait until MathJax has typeset the page; return why not, if it did not."""
        script = page.evaluate(
            "() => Array.from(document.scripts).map((s) => s.src).find((s) => /mathjax/i.test(s)) || null"
        )
        if script is None:
            has_math = page.evaluate("() => document.querySelector('.math') !== null")
            return "the page has formulas but loads no MathJax" if has_math else None
        if not script.startswith("http://127.0.0.1:"):  # shipped with the book, served with its pages
            return f"MathJax is loaded from {script}, not from the book's own copy: it needs a network"
        try:
            page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=MATHJAX_TIMEOUT_MS
            )
            page.evaluate("() => MathJax.startup.promise.then(() => true)")
        except Exception as error:  # noqa: BLE001 (any failure here is reported as the page's problem)
            return f"MathJax did not start: {error}"
        return None


def environment_says_ci() -> bool:
    """True on a CI machine, where the browser test must run: a missing browser there is a failure."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
