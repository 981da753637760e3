"""Long property-based fuzzing of the parsers: tests/fuzz/test_parsers.py with many cases.

The tests run in CI with a few hundred cases each; this runs the same properties with
``--examples`` cases each (20,000 by default) and records, per parser, how many cases
were tried and whether any broke the property (an exception other than the parser's own
error). The figures go to ``bench/results/fuzz_parsers.json``::

    python bench/fuzz_parsers.py
    python bench/fuzz_parsers.py --examples 100000 -k "test_q or test_geo_query"

The exit status is pytest's: 0 when every property held.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TESTS = REPO_DIR / "tests" / "fuzz" / "test_parsers.py"

_TEST = re.compile(r"^\S*test_parsers\.py::(\w+):\s*$")
_CASES = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")
_PHASE = re.compile(r"during (\w+) phase \(([\d.]+) seconds\)")


def main(argv: list[str] | None = None) -> int:
    """Run the parser properties with many cases; pytest's exit status."""
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument("--examples", type=int, default=20_000, help="cases per property")
    p.add_argument("-k", dest="select", help="pytest -k expression: run only these properties")
    p.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results" / "fuzz_parsers.json", help="JSON"
    )
    args = p.parse_args(argv)
    cmd = [sys.executable, "-m", "pytest", str(TESTS), "-q", "-p", "no:cacheprovider"]
    cmd += ["--hypothesis-show-statistics", "-o", "timeout=0"]
    if args.select:
        cmd += ["-k", args.select]
    env = dict(os.environ, CITYVERSE_FUZZ_EXAMPLES=str(args.examples))
    print("running:", " ".join(cmd), f"(CITYVERSE_FUZZ_EXAMPLES={args.examples})", flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO_DIR, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    parsers = parse_statistics(output)
    failed = sorted(set(re.findall(r"FAILED \S*::(\w+)", output)))
    results = {
        "benchmark": "fuzz_parsers",
        "machine": machine(),
        "examples_per_property": args.examples,
        "elapsed_s": round(elapsed, 1),
        "cases_total": sum(p["cases"] for p in parsers.values()),
        "properties": parsers,
        "failed": failed,
        "pytest_exit_status": proc.returncode,
    }
    print(f"\n{'property':<40} {'cases':>8} {'invalid':>8} {'seconds':>8}")
    for name, p in parsers.items():
        print(f"{name:<40} {p['cases']:>8} {p['invalid']:>8} {p['seconds']:>8.1f}")
    print(
        f"\n{results['cases_total']} cases in {results['elapsed_s']} s; failed: {failed or 'none'}"
    )
    if proc.returncode not in (0, 1) or failed:
        print(output[-6000:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {args.out}")
    return proc.returncode


def parse_statistics(output: str) -> dict[str, dict[str, Any]]:
    """Cases per property from hypothesis' statistics (every phase added up)."""
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in output.splitlines():
        test = _TEST.match(line)
        if test:
            current = found.setdefault(
                test.group(1), {"cases": 0, "failing": 0, "invalid": 0, "seconds": 0.0}
            )
            continue
        if current is None:
            continue
        phase = _PHASE.search(line)
        if phase:
            current["seconds"] += float(phase.group(2))
        cases = _CASES.search(line)
        if cases:
            current["cases"] += int(cases.group(1)) + int(cases.group(2))
            current["failing"] += int(cases.group(2))
            current["invalid"] += int(cases.group(3))
    return found


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "git_commit": _output(["git", "-C", str(REPO_DIR), "rev-parse", "--verify", "-q", "HEAD"])
        or "none",
    }


def _output(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


if __name__ == "__main__":
    sys.exit(main())
