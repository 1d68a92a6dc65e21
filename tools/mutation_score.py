"""Print the mutation score of each mutated module and in total, from the results of `mutmut run`.

Reads `mutmut results --all true` (one line per mutant, `name: status`) in the working
directory that holds mutmut's `mutants/` folder. A mutant counts as detected when a test
failed on it (killed), it made a test run past mutmut's time limit (timeout, e.g. an endless
loop) or it crashed the test process (segfault); every other status lowers the score, and the survivors are listed by name
so that `mutmut show NAME` prints their diffs.

Mutants that a stopped run has not reached yet are listed as "not checked" and lower the
score. Exits with status 1 when mutmut has checked no mutant (nothing was run).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
from pathlib import Path

DETECTED = ("killed", "timeout", "segfault")


def parse_results(text: str) -> dict[str, str]:
    """The status of each mutant, from the lines ``    pgnotes.module.x_function__mutmut_3: killed``."""
    statuses = {}
    for line in text.splitlines():
        name, separator, status = line.strip().rpartition(": ")
        if separator and "__mutmut_" in name:
            statuses[name] = status
    return statuses


def module_of(mutant: str) -> str:
    """The dotted module of a mutant's name: mutmut prefixes the function with ``x_`` or ``xǁClassǁ``."""
    parts = mutant.split(".")
    for index, part in enumerate(parts):
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:index])
    raise ValueError(f"not a mutmut mutant name: {mutant!r}")


def score_table(statuses: dict[str, str]) -> str:
    """A plain-text table: detected / total per module and overall, with the survivors' names."""
    by_module: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, status in statuses.items():
        by_module[module_of(name)][status] += 1
    lines = [f"{'module':<22} {'detected':>8} {'total':>6} {'score':>7}  other statuses"]
    overall: collections.Counter[str] = collections.Counter()
    for module in sorted(by_module):
        counts = by_module[module]
        overall.update(counts)
        lines.append(_row(module, counts))
    lines.append(_row("total", overall))
    survivors = sorted(name for name, status in statuses.items() if status not in (*DETECTED, "not checked"))
    if survivors:
        lines.append("")
        lines.append("Not detected (mutmut show NAME prints the change):")
        lines.extend(f"  {name}: {statuses[name]}" for name in survivors)
    return "\n".join(lines)


def _row(label: str, counts: collections.Counter[str]) -> str:
    total = sum(counts.values())
    detected = sum(counts[status] for status in DETECTED)
    others = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()) if status not in DETECTED and n)
    included = ", ".join(f"{status} {counts[status]}" for status in DETECTED[1:] if counts[status])
    included = f" (detected includes {included})" if included else ""
    return f"{label:<22} {detected:>8} {total:>6} {100 * detected / total:>6.1f}%  {others}{included}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutmut", default=str(Path(sys.executable).with_name("mutmut")), help="mutmut executable")
    args = parser.parse_args(argv)
    result = subprocess.run([args.mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True)
    statuses = parse_results(result.stdout)
    if all(status == "not checked" for status in statuses.values()):
        print("mutmut has no results: run `mutmut run` first.", file=sys.stderr)
        return 1
    print(score_table(statuses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
