"""Run every benchmark in bench/ and print one table: figure, value, target, met.

Each benchmark keeps its own output (shown as it runs) and adds machine-readable lines

    FIGURE<TAB>name<TAB>value<TAB>unit<TAB>target<TAB>op      (op: <=, >= or empty)

which are collected here. The soak runs in its quick mode unless SOAK_QUICK=0 is set
(`make soak` runs the full day). Exits 1 when a benchmark failed or a target was missed.

Run: .venv/bin/python bench/run_all.py [name ...]   (names without .py: store sms soak ...)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all.py"}  # helpers are named soak_*.py or _*.py


@dataclass(slots=True)
class Figure:
    bench: str
    name: str
    value: float
    unit: str
    target: str
    op: str

    @property
    def met(self) -> str:
        if self.op not in ("<=", ">=") or self.target in ("", "-"):
            return ""
        target = float(self.target)
        ok = self.value <= target if self.op == "<=" else self.value >= target
        return "yes" if ok else "NO"


def parse(bench: str, line: str) -> Figure | None:
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 6 or parts[0] != "FIGURE":
        return None
    try:
        value = float(parts[2])
    except ValueError:
        return None
    return Figure(bench, parts[1], value, parts[3], parts[4], parts[5])


def benches(names: list[str]) -> list[Path]:
    found = [
        p
        for p in sorted(HERE.glob("*.py"))
        if p.name not in SKIP and not p.name.startswith(("_", "soak_"))
    ]
    if names:
        found = [p for p in found if p.stem in names]
    return found


def run(path: Path, env: dict[str, str]) -> tuple[int, list[Figure], float]:
    print(f"== {path.relative_to(HERE.parent)}", flush=True)
    started = time.monotonic()
    figures = []
    with subprocess.Popen(
        [sys.executable, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=HERE.parent,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            fig = parse(path.stem, line)
            if fig is not None:
                figures.append(fig)
            else:
                print(line, end="", flush=True)
    return proc.returncode, figures, time.monotonic() - started


def value_text(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def table(figures: list[Figure], failed: list[str]) -> None:
    rows = [("bench", "figure", "value", "target", "met")]
    for f in figures:
        target = f"{f.op} {f.target} {f.unit}".strip() if f.op else "-"
        rows.append((f.bench, f.name, f"{value_text(f.value)} {f.unit}".strip(), target, f.met))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    print()
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    missed = [f for f in figures if f.met == "NO"]
    print()
    failures = f"; benchmarks that failed: {', '.join(failed)}" if failed else ""
    print(
        f"{len(figures)} figures, {sum(f.met == 'yes' for f in figures)} targets met, "
        f"{len(missed)} missed{failures}"
    )


def main() -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("SOAK_QUICK", "1")
    figures: list[Figure] = []
    failed = []
    for path in benches(sys.argv[1:]):
        code, got, took = run(path, env)
        print(f"   ({took:.0f} s, exit {code})", flush=True)
        figures += got
        if code != 0:
            failed.append(path.stem)
    table(figures, failed)
    return 1 if failed or any(f.met == "NO" for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
