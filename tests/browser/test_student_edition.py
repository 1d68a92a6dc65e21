"""The student edition's configuration and its leak check (tools/student_build.py), on crafted pages.

The build itself runs in ``make student``; these check, fast and without a build, that the leak check
finds a solution left on a page, in the search index or behind a link, and accepts an edition without.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import student_build  # noqa: E402

EXERCISE_PAGE = [
    ("markdown", "# Chapter\n\nThe score of a Gaussian is computed below.\n\n```{exercise}\n:label: ex-1\n\n"
                 "Differentiate the log-density with respect to the mean.\n```\n\n"
                 "```{solution-start} ex-1\n:class: dropdown\n```\n\nThe derivative is the residual over the "
                 "variance, because only the quadratic term depends on the mean."),
    ("code", "score = (a - mean) / std**2\nassert torch.allclose(score, autograd_score)\nprint('agrees')\nagrees"),
    ("markdown", "```{solution-end}\n```\n\n:::{solution} ex-1\nA second way: differentiate numerically with "
                 "central differences and compare to the closed form.\n:::\n\n## Summary\n\nDone."),
]
SOLUTION_TEXTS = [
    "Solution to\n\nThe derivative is the residual over the variance, because only the quadratic term depends on "
    "the mean.\n\nscore = (a - mean) / std**2\nassert torch.allclose(score, autograd_score)\nprint('agrees')\nagrees",
    "Solution to\n\nA second way: differentiate numerically with central differences and compare to the closed form.",
]


def test_the_source_is_split_at_gated_and_plain_solutions():
    source = student_build.split_source(EXERCISE_PAGE)
    assert source.solutions == 2
    assert "residual over the variance" in source.inside and "torch.allclose(score" in source.inside
    assert "central differences" in source.inside
    assert "Differentiate the log-density" in source.outside and "Summary" in source.outside
    assert "residual" not in source.outside and "allclose" not in source.outside


def test_fingerprints_leave_out_what_the_page_says_outside_its_solutions():
    source = student_build.split_source(EXERCISE_PAGE)
    marks = student_build.fingerprints(SOLUTION_TEXTS, source.outside)
    assert ("derivative", "is", "the", "residual", "over", "the", "variance", "because") in marks
    # "the score of a gaussian is computed below" is prose outside the solutions: not a leak.
    assert not any(mark[:4] == ("score", "of", "a", "gaussian") for mark in marks)


@pytest.fixture
def edition(tmp_path):
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / "book" / "chapter.html").write_text(
        "<html><body><h1>Chapter</h1><p>The score of a Gaussian is computed below.</p>"
        "<div class='exercise admonition'><p>Differentiate the log-density with respect to the mean.</p></div>"
        "<h2>Summary</h2><p>Done.</p></body></html>"
    )
    (html / "searchindex.js").write_text('Search.setIndex({"terms": {"score": [0], "gaussian": [0]}})')
    sources = {"book/chapter": student_build.split_source(EXERCISE_PAGE)}
    removed = {"book/chapter": SOLUTION_TEXTS}
    return html, removed, sources


def test_an_edition_without_solutions_passes(edition):
    html, removed, sources = edition
    assert student_build.leaks(html, removed, sources) == []


@pytest.mark.parametrize(
    ("where", "content", "message"),
    [
        ("book/chapter.html", "<pre>score = (a - mean) / std**2\nassert torch.allclose(score, autograd_score)</pre>",
         "text of a solution"),
        ("book/chapter.html", "<div class='solution dropdown admonition'><p>Hidden until clicked.</p></div>",
         "holds a solution element"),
        ("book/chapter.html", "<a href='../_sources/book/chapter.ipynb'>.ipynb</a>", "links to a notebook"),
        ("searchindex.js", "differentiate numerically with central differences and compare to the closed form",
         "text of a solution"),
        ("_sources/book/chapter.ipynb", "{}", "a notebook in the student edition"),
    ],
)
def test_a_solution_left_anywhere_is_found(edition, where, content, message):
    html, removed, sources = edition
    path = html / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + content)
    problems = student_build.leaks(html, removed, sources)
    assert any(message in problem for problem in problems), problems


def test_a_solution_the_build_did_not_remove_is_found(edition):
    html, removed, sources = edition
    problems = student_build.leaks(html, {"book/chapter": SOLUTION_TEXTS[:1]}, sources)
    assert problems == ["book/chapter: 2 solutions in the source, 1 removed"]


def test_the_student_configuration_is_the_book_configuration_without_solutions_or_sources():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    student = student_build.student_config(config)
    options = student["sphinx"]["config"]
    assert options["pgnotes_student_edition"] is True
    assert options["html_copy_source"] is False and options["html_theme_options"]["use_download_button"] is False
    assert student["sphinx"]["recursive_update"] is True
    assert student["sphinx"]["local_extensions"]["pgnotes_sphinx"] == str(ROOT / "tools")
    assert not {"binderhub_url", "colab_url"} & set(student["launch_buttons"])
    assert student["title"].startswith(config["title"])
    # Everything else is the book's own configuration, so the two editions cannot drift apart.
    for key in set(config) - {"title", "sphinx", "launch_buttons"}:
        assert student[key] == config[key], key
    for key in set(config["sphinx"]["config"]) - {"html_theme_options"}:
        assert options[key] == config["sphinx"]["config"][key], key
    assert json.dumps(config) == json.dumps(yaml.safe_load((ROOT / "_config.yml").read_text())), "config mutated"


def test_the_student_edition_has_no_way_to_the_full_notebooks():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    student = student_build.student_config(config)
    assert student["launch_buttons"]["thebe"] is False  # Live Code starts a Binder of the repository
    assert student["sphinx"]["local_extensions"]["student_build"] == str(ROOT / "tools")
    assert student["sphinx"]["config"]["pgnotes_launch_hosts"] == ["colab.research.google.com", "mybinder.org"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<p>Open it in <a href='https://mybinder.org/v2/gh/x/y/main'>Binder</a>.</p>", "points to mybinder.org"),
        ("<p>Use the rocket icon above to open it.</p>", "mentions launch buttons"),
    ],
)
def test_a_way_to_the_full_notebooks_is_found(edition, content, message):
    html, removed, sources = edition
    page = html / "book" / "chapter.html"
    page.write_text(page.read_text().replace("<h2>Summary</h2>", content + "<h2>Summary</h2>"))
    problems = student_build.leaks(html, removed, sources, ["mybinder.org"])
    assert any(message in problem for problem in problems), problems


def test_paragraphs_about_the_launch_buttons_are_recognised():
    from docutils import nodes

    colab = nodes.reference("Colab", "Colab", refuri="https://colab.research.google.com/github/x")
    link = nodes.paragraph("", "", nodes.Text("Run it in "), colab)
    assert student_build._refers_to_launch(link, ["colab.research.google.com"])
    assert student_build._refers_to_launch(nodes.paragraph(text="The rocket icon opens Binder."), [])
    assert not student_build._refers_to_launch(nodes.paragraph(text=student_build.STUDENT_LAUNCH_TEXT), ["mybinder.org"])
