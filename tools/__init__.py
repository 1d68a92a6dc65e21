"""The project's own tools: notebook sync and execution, chapter budgets, the student edition, the Sphinx extension.

Run them as modules from the repository root (``python -m tools.notebooks sync``);
tests import them as ``from tools import notebooks``.
"""
