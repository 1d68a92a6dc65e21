"""The checks of the browser test, on small crafted pages: each one fails on what it must catch.

These run without a browser, in ``pytest tests`` as well as in ``pytest tests/browser``.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import bookcheck
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# What MathJax 3 (CHTML output, assistive MathML on) leaves in the DOM, reduced to what the checks read.
TYPESET_INLINE = (
    '<span class="math notranslate nohighlight"><mjx-container class="MathJax" jax="CHTML">'
    '<mjx-math aria-hidden="true"><mjx-mi></mjx-mi></mjx-math><mjx-assistive-mml><math><mi>a</mi></math>'
    "</mjx-assistive-mml></mjx-container></span>"
)
UNDEFINED_MACRO = (
    '<span class="math notranslate nohighlight"><mjx-container class="MathJax" jax="CHTML"><mjx-math>'
    '<mjx-mtext class="mjx-n" style="color: red;"></mjx-mtext></mjx-math><mjx-assistive-mml><math>'
    '<mtext mathcolor="red">\\KL</mtext></math></mjx-assistive-mml></mjx-container></span>'
)
TEX_ERROR = (
    '<span class="math notranslate nohighlight"><mjx-container class="MathJax" jax="CHTML"><mjx-math>'
    '<mjx-merror data-mjx-error="Missing argument for \\frac"><mjx-mtext><mjx-utext>Missing argument for \\frac'
    '</mjx-utext></mjx-mtext></mjx-merror></mjx-math><mjx-assistive-mml><math><merror '
    'data-mjx-error="Missing argument for \\frac"><mtext>Missing argument for \\frac</mtext></merror></math>'
    "</mjx-assistive-mml></mjx-container></span>"
)


def page(body: str) -> str:
    return f"<html><head><title>t</title><script>var x = '$$\\\\frac';</script></head><body>{body}</body></html>"


class TestMath:
    def test_a_typeset_page_with_tex_in_code_passes(self):
        html = page(
            f"<p>The action {TYPESET_INLINE} costs $5.</p>"
            "<pre>print(r'$\\frac{a}{b}$ \\nabla')</pre>"
            "<p>Write <code>\\(\\mu\\)</code> in Markdown.</p>"
            '<div class="highlight"><span>$$x$$</span></div>'
        )
        assert bookcheck.math_problems(html) == []

    def test_a_formula_without_mathjax_output_fails(self):
        html = page('<p>See <span class="math notranslate nohighlight">\\(\\nabla_\\theta J\\)</span>.</p>')
        problems = bookcheck.math_problems(html)
        assert problems[0] == "formula not typeset: '\\\\(\\\\nabla_\\\\theta J\\\\)'"
        # The raw text is also visible in the prose, and said so.
        assert any("raw TeX '\\\\('" in p for p in problems) and any("\\\\nabla" in p for p in problems)

    @pytest.mark.parametrize(
        "raw",
        ["$$\\log \\pi$$", "\\(a\\)", "\\[a\\]", "\\frac{a}{b}", "\\nabla f", "$a - \\mu$", "$a$",
         "\\begin{aligned}", "$x^2$"],
    )
    def test_raw_tex_left_in_the_prose_fails(self, raw):
        problems = bookcheck.math_problems(page(f"<p>Hence {raw} holds.</p>"))
        assert problems and all(p.startswith("raw TeX") for p in problems), problems

    def test_prices_and_plain_backslashes_are_not_tex(self):
        assert bookcheck.math_problems(page("<p>It costs $5 or $10, and a\\b is a path.</p>")) == []

    def test_an_undefined_macro_fails_with_its_name(self):
        problems = bookcheck.math_problems(page(f"<p>The divergence {UNDEFINED_MACRO} is small.</p>"))
        assert len(problems) == 1
        assert "undefined macro '\\\\KL'" in problems[0] and "divergence" in problems[0]

    def test_a_tex_error_fails_once_with_mathjax_message(self):
        problems = bookcheck.math_problems(page(f"<p>{TEX_ERROR}</p>"))
        assert problems == [
            "MathJax could not typeset a formula: 'Missing argument for \\\\frac' (in 'Missing argument for \\\\frac')"
        ]


def test_images_that_did_not_load_fail():
    images = [
        {"src": "a.png", "complete": True, "naturalWidth": 640},
        {"src": "b.png", "complete": True, "naturalWidth": 0},
        {"src": "c.png", "complete": False, "naturalWidth": 0},
    ]
    assert bookcheck.image_problems(images) == ["image did not load: 'b.png'", "image did not load: 'c.png'"]


def test_console_errors_count_unless_they_come_from_a_refused_third_party_request():
    blocked = ["https://unpkg.com/thebe@0.8.2/lib/index.js"]
    console = [
        {"type": "error", "text": "Failed to load resource: net::ERR_BLOCKED_BY_CLIENT", "url": blocked[0]},
        {"type": "warning", "text": "deprecated", "url": "http://127.0.0.1:1/_static/a.js"},
        {"type": "log", "text": "[PST]: Changed to auto mode", "url": "http://127.0.0.1:1/_static/a.js"},
        {"type": "error", "text": "Got invalid theme mode", "url": "http://127.0.0.1:1/_static/theme.js"},
    ]
    failed = [
        {"url": blocked[0], "failure": "net::ERR_BLOCKED_BY_CLIENT"},
        {"url": "http://127.0.0.1:1/_static/missing.css", "failure": "HTTP 404"},
    ]
    problems = bookcheck.console_problems(console, ["SyntaxError: Identifier 'X' has already been declared"],
                                          failed, blocked)
    assert problems == [
        "console error: Got invalid theme mode (from http://127.0.0.1:1/_static/theme.js)",
        "JavaScript error: SyntaxError: Identifier 'X' has already been declared",
        "failed to load http://127.0.0.1:1/_static/missing.css: HTTP 404",
    ]
    assert bookcheck.console_problems(console[:3], [], failed[:1], blocked) == []


class TestLinks:
    SITE = "http://127.0.0.1:8000/"

    @pytest.fixture
    def site(self, tmp_path):
        (tmp_path / "book").mkdir()
        (tmp_path / "book" / "chapter.html").write_text("<p>the page itself; its anchors are read from its DOM</p>")
        (tmp_path / "book" / "notation.html").write_text('<h1 id="notation">N</h1><a name="old-anchor"></a>')
        (tmp_path / "book" / "my page.html").write_text("<p id='x'>x</p>")
        (tmp_path / "_sources").mkdir()
        (tmp_path / "_sources" / "chapter.ipynb").write_text("{}")
        (tmp_path / "index.html").write_text("<p>home</p>")
        return tmp_path

    def problems(self, site, links: str) -> list[str]:
        html = page(f'<section id="here">{links}</section>')
        return bookcheck.link_problems(html, self.SITE + "book/chapter.html", self.SITE, site)

    def test_links_to_existing_files_and_anchors_pass(self, site):
        links = (
            '<a href="notation.html">a</a><a href="notation.html#notation">b</a><a href="#here">c</a>'
            '<a href="../_sources/chapter.ipynb">d</a><a href="../">e</a><a href="my%20page.html#x">f</a>'
            '<a href="notation.html#old-anchor">g</a><a href="#">h</a><a href="https://example.org/x.html">i</a>'
            '<a href="mailto:a@b.c">j</a><a href="javascript:void(0)">k</a>'
            '<a href="http://127.0.0.1:8000/book/notation.html">l</a>'
        )
        assert self.problems(site, links) == []

    def test_a_missing_file_fails(self, site):
        assert self.problems(site, '<a href="gradients.html">x</a>') == [
            "link 'gradients.html' points at a missing file book/gradients.html"
        ]

    def test_a_missing_anchor_fails_on_this_page_and_on_another(self, site):
        problems = self.problems(site, '<a href="#nowhere">x</a><a href="notation.html#symbols">y</a>')
        assert problems == [
            "link '#nowhere': no element with id 'nowhere' in book/chapter.html",
            "link 'notation.html#symbols': no element with id 'symbols' in book/notation.html",
        ]


class TestLaunchButtons:
    CONFIG = {
        "repository": {"url": "https://github.com/owner/course", "branch": "spring", "path_to_book": ""},
        "launch_buttons": {"notebook_interface": "classic", "binderhub_url": "https://mybinder.org/",
                           "colab_url": "https://colab.research.google.com"},
    }
    BINDER = "https://mybinder.org/v2/gh/owner/course/spring?urlpath=tree/book/ch1.ipynb"
    COLAB = "https://colab.research.google.com/github/owner/course/blob/spring/book/ch1.ipynb"
    THEBE = '<button onclick="initThebeSBT()">Live Code</button>'

    def test_expected_addresses_follow_the_configuration(self):
        assert bookcheck.expected_launch_urls(self.CONFIG, "book/ch1") == {"Binder": self.BINDER, "Colab": self.COLAB}
        lab = {**self.CONFIG, "repository": {**self.CONFIG["repository"], "path_to_book": "site/"},
               "launch_buttons": {**self.CONFIG["launch_buttons"], "notebook_interface": "jupyterlab"}}
        assert bookcheck.expected_launch_urls(lab, "book/ch1")["Binder"] == (
            "https://mybinder.org/v2/gh/owner/course/spring?urlpath=lab/tree/site/book/ch1.ipynb"
        )

    def test_a_page_with_both_buttons_passes(self):
        html = page(f'<a href="{self.BINDER}">Binder</a><a href="{self.COLAB}">Colab</a>{self.THEBE}'
                    '<a href="https://mybinder.org">help</a>')
        expected = {"Binder": self.BINDER, "Colab": self.COLAB}
        assert bookcheck.launch_problems(html, expected, thebe=True) == []

    def test_a_missing_or_wrong_button_fails(self):
        expected = {"Binder": self.BINDER, "Colab": self.COLAB}
        missing_colab = page(f'<a href="{self.BINDER}">Binder</a>{self.THEBE}')
        assert bookcheck.launch_problems(missing_colab, expected, thebe=True) == [
            f"no Colab launch button opening {self.COLAB}"
        ]
        wrong_branch = self.COLAB.replace("/spring/", "/main/")
        wrong = page(f'<a href="{self.BINDER}">Binder</a><a href="{wrong_branch}">Colab</a>')
        assert bookcheck.launch_problems(wrong, expected, thebe=True) == [
            f"no Colab launch button opening {self.COLAB}",
            f"Colab launch button opens {wrong_branch}, expected {self.COLAB}",
            "no Live Code (Thebe) launch button",
        ]


def test_toc_pages_follow_the_toc_in_reading_order(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n      - file: book/one.ipynb\n"
        "        sections:\n          - file: book/two\n  - caption: B\n    chapters:\n      - file: book/three\n"
    )
    (tmp_path / "book").mkdir()
    for name in ("intro.md", "one.ipynb", "two.md", "three.ipynb"):
        (tmp_path / "book" / name).write_text("")
    pages = bookcheck.toc_pages(tmp_path, tmp_path / "_build" / "html")
    assert [(p.docname, p.is_notebook) for p in pages] == [
        ("book/intro", False), ("book/one", True), ("book/two", False), ("book/three", True)
    ]
    assert pages[1].html == tmp_path / "_build" / "html" / "book" / "one.html"
    (tmp_path / "book" / "three.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match="book/three"):
        bookcheck.toc_pages(tmp_path, tmp_path / "_build" / "html")


def test_the_toc_of_this_book_lists_pages_that_exist():
    pages = bookcheck.toc_pages(ROOT, ROOT / "_build" / "html")
    assert pages and any(p.is_notebook for p in pages)


def collected(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_browser_run_is_collected_only_when_its_folder_is_named():
    browser_run = "tests/browser/test_browser_book.py::"
    checkers = "tests/browser/test_browser_checkers.py::"
    in_folder = collected("tests/browser")
    assert browser_run in in_folder and checkers in in_folder
    # The package tests run before the book is built, as `pytest tests` (a bare `pytest` has testpaths =
    # tests). The other test files are left out here only to keep this check fast.
    whole = collected("tests", "--ignore-glob=tests/test_*.py")
    assert checkers in whole and browser_run not in whole
