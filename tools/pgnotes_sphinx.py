"""Sphinx extension of the pgnotes book: a student edition without solutions, and one HTML repair.

Enabled in ``_config.yml`` (``sphinx.local_extensions``). It does two things:

1. With ``pgnotes_student_edition = True`` (set by ``tools/student_build.py``), every solution is
   removed from the pages: ``{solution}`` directives and gated ``{solution-start}`` ...
   ``{solution-end}`` blocks, including the notebook code cells between them. The text of what was
   removed is written next to the HTML folder (``removed-solutions.json``, never inside it), so that
   the build can be checked for leaks. sphinx-exercise's own
   ``hide_solutions`` cannot be used for this: it drops the ``solution-start`` marker but keeps the
   ``solution-end`` one, so the gated content stays on the page and the HTML writer fails on the
   orphaned end marker.
2. Each inline script is written to a page once. Sphinx 7.4 writes a script added with
   ``app.add_js_file(None, body=...)`` after the builder started twice (it compares ``None`` with
   ``""``); sphinx-thebe's ``const THEBE_JS_URL = ...`` then throws "Identifier has already been
   declared" in every reader's browser. Later Sphinx releases fix this at the source.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.transforms import SphinxTransform

__all__ = ["RemoveSolutions", "drop_duplicate_scripts", "setup"]


class RemoveSolutions(SphinxTransform):
    """Remove every solution from the document when building the student edition."""

    # After sphinx-exercise merged the gated solution-start ... solution-end blocks (priority 10).
    default_priority = 50

    def apply(self, **kwargs: Any) -> None:
        if not self.config.pgnotes_student_edition:
            return
        from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node

        registry = getattr(self.env, "sphinx_exercise_registry", {})
        removed = self.env.pgnotes_removed_solutions.setdefault(self.env.docname, [])
        for node in list(self.document.findall(solution_node)):
            registry.pop(node.get("label"), None)
            removed.append(node.astext())
            node.parent.remove(node)
        leftovers = list(self.document.findall(lambda n: isinstance(n, (solution_start_node, solution_end_node))))
        if leftovers:
            # An unmatched gate would leave solution text on the page: refuse to build rather than leak.
            raise ExtensionError(f"{self.env.docname}: a solution-start or solution-end without its partner")


REMOVED_SOLUTIONS = "removed-solutions.json"


def _init_removed(app: Sphinx, env, docnames) -> None:
    if not hasattr(env, "pgnotes_removed_solutions"):
        env.pgnotes_removed_solutions = {}


def _purge_removed(app: Sphinx, env, docname: str) -> None:
    getattr(env, "pgnotes_removed_solutions", {}).pop(docname, None)


def _merge_removed(app: Sphinx, env, docnames, other) -> None:
    for docname in docnames:
        if docname in getattr(other, "pgnotes_removed_solutions", {}):
            env.pgnotes_removed_solutions[docname] = other.pgnotes_removed_solutions[docname]


def _write_removed(app: Sphinx, exception) -> None:
    if exception is None and app.config.pgnotes_student_edition:
        record = pathlib.Path(app.outdir).parent / REMOVED_SOLUTIONS
        record.write_text(json.dumps(getattr(app.env, "pgnotes_removed_solutions", {}), indent=1, sort_keys=True))


def drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Keep the first of scripts that differ only in a missing (None) versus empty ("") file name."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", str(script)) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx_exercise")
    app.add_config_value("pgnotes_student_edition", False, "env", [bool])
    app.add_transform(RemoveSolutions)
    app.connect("env-before-read-docs", _init_removed)
    app.connect("env-purge-doc", _purge_removed)
    app.connect("env-merge-info", _merge_removed)
    app.connect("build-finished", _write_removed)
    app.connect("html-page-context", drop_duplicate_scripts)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
