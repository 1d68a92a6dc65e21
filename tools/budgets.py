#!/usr/bin/env python3
"""Time and memory each chapter takes to run, as a reader on Binder runs it; fail over budget.

Usage (from the repository root)::

    python -m tools.budgets                  # every notebook of _toc.yml
    python -m tools.budgets book/x.ipynb     # only these

Each chapter runs top to bottom in a fresh kernel limited to one CPU and one thread (OMP, MKL,
OpenBLAS and so PyTorch's intra-op pool; the kernel is also pinned to one core where the system
allows), as on a small Binder instance. Measured:

- time: from asking for the kernel to the end of the last cell, so kernel start-up is included;
- peak memory: the largest resident set of the kernel and its child processes together, sampled
  every 10 ms, and never below the kernel's own high-water mark (VmHWM), which the operating system
  records exactly, so a short spike between two samples is still counted for the kernel itself.

The import floor (kernel start-up and ``import torch, sympy, matplotlib.pyplot, pgnotes``) is shown
first: what any chapter costs before its first line of its own.

Budgets: each chapter under 20 s and 1.5 GB (10^9 bytes); a chapter whose file name contains
"reinforce" under 60 s. Prints a table; exits with status 1 if a chapter is over budget or fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import sys
import threading
import time

import nbformat
import psutil

from tools.notebooks import toc_docnames

ROOT = pathlib.Path(__file__).resolve().parent.parent
KERNEL_NAME = "python3"
SECONDS_BUDGET = 20.0
SECONDS_BUDGET_REINFORCE = 60.0
MEMORY_BUDGET_BYTES = 1.5e9
CELL_TIMEOUT_SECONDS = 600
SAMPLE_SECONDS = 0.01
# One thread for every numerical library a chapter may use; the kernel inherits this environment.
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}
FLOOR_SOURCE = (
    "import torch, sympy, matplotlib.pyplot, pgnotes\n"
    "assert torch.get_num_threads() == 1, torch.get_num_threads()"
)


@dataclasses.dataclass
class Measurement:
    name: str
    seconds: float = float("nan")
    peak_bytes: float = float("nan")
    slowest_cell: tuple[int, float] | None = None  # (index among the code cells, seconds)
    error: str | None = None


def chapters() -> list[pathlib.Path]:
    """The notebooks of _toc.yml, in reading order."""
    files = toc_docnames(ROOT)
    paths = [ROOT / pathlib.PurePosixPath(f).with_suffix(".ipynb") for f in files]
    return [p for p in paths if p.exists()]


def budget_seconds(path: pathlib.Path) -> float:
    return SECONDS_BUDGET_REINFORCE if "reinforce" in path.stem.lower() else SECONDS_BUDGET


def _vm_hwm_bytes(pid: int) -> int:
    """The kernel's peak resident set as recorded by Linux (0 where /proc has no such line)."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) * 1024 if match else 0


class TreeMemorySampler(threading.Thread):
    """Samples the summed resident memory of a process and its descendants until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            total = 0
            try:
                for process in [self.process, *self.process.children(recursive=True)]:
                    try:
                        total += process.memory_info().rss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, total)
            self._stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak


def measure(nb: nbformat.NotebookNode, name: str, workdir: pathlib.Path) -> Measurement:
    """Run a notebook in a fresh one-thread kernel and measure it (the notebook is not written back)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    result = Measurement(name=name)
    state: dict = {"sampler": None, "pid": None, "hwm": 0, "end": None, "cell_start": None, "cells": []}

    def on_notebook_start(notebook):
        pid = getattr(client.km.provisioner, "pid", None) or client.km.provisioner.process.pid
        state["pid"] = pid
        if hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(pid, {min(os.sched_getaffinity(0))})
            except OSError:
                pass
        state["sampler"] = TreeMemorySampler(pid)
        state["sampler"].start()

    def on_cell_start(cell, cell_index):
        state["cell_start"] = time.perf_counter()

    def on_cell_executed(cell, cell_index, execute_reply):
        now = time.perf_counter()
        state["end"] = now
        if cell.cell_type == "code":
            state["cells"].append(now - state["cell_start"])
        state["hwm"] = max(state["hwm"], _vm_hwm_bytes(state["pid"]))

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(workdir)}},
        on_notebook_start=on_notebook_start,
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the traceback's terminal colours
        lines = [line for line in text.strip().splitlines() if line.strip()]
        result.error = lines[-1] if lines else "a cell failed"
    except Exception as error:  # noqa: BLE001 (any failure to run is reported in the table)
        result.error = f"{type(error).__name__}: {error}"
    finally:
        sampled = state["sampler"].stop() if state["sampler"] else 0
    if state["end"] is not None:
        result.seconds = state["end"] - start
        result.peak_bytes = max(sampled, state["hwm"])
    if state["cells"]:
        index = max(range(len(state["cells"])), key=state["cells"].__getitem__)
        result.slowest_cell = (index, state["cells"][index])
    return result


def floor() -> Measurement:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(FLOOR_SOURCE)])
    return measure(nb, "import floor (start + imports)", ROOT / "book")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    args = parser.parse_args(argv)
    os.environ.update(ONE_THREAD)
    paths = [p.resolve() for p in args.notebooks] or chapters()
    if not paths:
        print("no notebook to measure", file=sys.stderr)
        return 1

    header = (f"{'chapter':40s} {'time (s)':>9s} {'budget':>7s} {'peak (MB)':>10s} {'budget':>7s}  "
              "slowest cell   verdict")
    print(header)
    print("-" * len(header))
    base = floor()
    print(row(base, None, None))
    over = base.error is not None
    for path in paths:
        name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        result = measure(nbformat.read(path, as_version=4), name, path.parent)
        seconds = budget_seconds(path)
        print(row(result, seconds, MEMORY_BUDGET_BYTES), flush=True)
        over |= result.error is not None or not (result.seconds <= seconds and result.peak_bytes <= MEMORY_BUDGET_BYTES)
    print()
    print(f"One CPU, {ONE_THREAD['OMP_NUM_THREADS']} thread; time includes kernel start-up; peak = kernel and its "
          "children, resident memory.")
    if over:
        print("Over budget or failed: see the verdicts above.")
    return 1 if over else 0


def row(result: Measurement, seconds: float | None, memory: float | None) -> str:
    slowest = f"#{result.slowest_cell[0]} {result.slowest_cell[1]:6.1f} s" if result.slowest_cell else ""
    if result.error:
        verdict = f"FAILED: {result.error}"
    elif seconds is None:
        verdict = ""
    else:
        late = result.seconds > seconds
        big = result.peak_bytes > memory
        over = [what for what, bad in (("time", late), ("memory", big)) if bad]
        verdict = "OVER: " + ", ".join(over) if over else "ok"
    budget_s = f"{seconds:7.0f}" if seconds else f"{'':7s}"
    budget_m = f"{memory / 1e6:7.0f}" if memory else f"{'':7s}"
    return (f"{result.name:40s} {result.seconds:9.1f} {budget_s} {result.peak_bytes / 1e6:10.0f} {budget_m}  "
            f"{slowest:13s}  {verdict}")


if __name__ == "__main__":
    sys.exit(main())
