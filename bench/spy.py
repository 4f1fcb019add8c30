"""Summarise py-spy's collapsed stacks from ``bench.run --py-spy DIR``.

``python -m bench.spy DIR [--top K]``

Why a summary of our own: a flame graph of a prefork worker is dominated by
the parent idling in its event loop. What matters is where a *task* spends
its wall time, waits on PostgreSQL and Redis included (the samples are taken
with ``--idle``). So only stacks that pass through one of the hub's tasks are
counted, and they are attributed three ways: per task, per hub function
(inclusive) and per leaf frame (what the CPU or the wait was actually in).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

TASKS = ("fetch_page", "map_page", "upsert_page", "route_order", "raise_order", "submit")
OURS = re.compile(r"(?:^|/)(?:hub|workers|connectors|mappings|emulators|s2s)/[\w/]+\.py")
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?):(?P<line>\d+)\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, file) for each frame of a collapsed stack, root first."""
    out = []
    for raw in stack.split(";"):
        m = FRAME.match(raw.strip())
        if m:
            out.append((m["func"], m["file"]))
    return out


def summarise(path: Path, top: int) -> str:
    """A text report of one worker's samples, restricted to stacks inside a task."""
    per_task: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        start = next(
            (i for i, (f, file) in enumerate(frames) if f in TASKS and OURS.search(file)), None
        )
        if start is None:
            continue
        task = frames[start][0]
        frames = frames[start:]  # the worker's own machinery above the task is not ours to fix
        total += count
        per_task[task] += count
        seen: set[str] = set()
        for func, file in frames:
            m = OURS.search(file)
            if m:
                name = f"{m.group(0).lstrip('/')}:{func}"
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += count
        func, file = frames[-1]
        short = file.split("site-packages/")[-1] if "site-packages/" in file else file
        leaves[f"{func} ({short})"] += count
    if total == 0:
        return f"{path.name}: no samples inside a task"
    lines = [f"== {path.name}: {total} samples inside tasks (wall time, waits included)"]
    lines.append("-- per task")
    lines += [f"  {n / total * 100:5.1f}%  {name}" for name, n in per_task.most_common()]
    lines.append("-- hub functions, inclusive")
    lines += [f"  {n / total * 100:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines.append("-- leaf frames (where the time is spent)")
    lines += [f"  {n / total * 100:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spy")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    files = sorted(args.directory.glob("*.txt"))
    if not files:
        print(f"no py-spy output in {args.directory}", file=sys.stderr)
        return 1
    for path in files:
        print(summarise(path, args.top))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
