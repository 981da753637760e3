"""Fuzzing of the whole HTTP API from its OpenAPI document, with schemathesis.

Starts ``cityverse serve`` on a free loopback port over a fresh SQLite store in a temporary
data directory, points ``schemathesis run`` at ``/ngsi-ld/v1/openapi.json`` and reports,
for each operation, how many cases were tried and which failed: a 5xx answer
(``not_a_server_error``) or, unless ``--checks`` says otherwise, an answer that does not
match the document (``response_schema_conformance``). The figures go to
``bench/results/fuzz_api.json``::

    python bench/fuzz_api.py                       # 150 cases per operation
    python bench/fuzz_api.py --max-examples 20 --phases examples,coverage
    python bench/fuzz_api.py --store 'postgresql:///postgres?host=/var/run/postgresql&user=postgres&schema=fuzz'

Generated requests carry arbitrary URLs (in Link headers, @contexts, subscription
endpoints, device endpoints) that the server would try to reach. So the run, server and
client alike, happens in a network namespace of its own (``unshare --net``) where only
the loopback interface exists: nothing leaves the machine. The exit status is 1 when any
5xx was found. ``--store`` runs the server on another store instead (PostgreSQL through
its Unix socket, which the namespace does not cut off; a schema of its own, emptied
first, keeps the run apart from other data).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_load as hl

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"
DOCUMENT = "/ngsi-ld/v1/openapi.json"
ISOLATED = "CITYVERSE_FUZZ_ISOLATED"
"""Set in the environment of the run once it is inside its own network namespace."""

EXCLUDED = {
    # A live stream that matches answers forever: it would only ever time out.
    "stream": "a Server-Sent Events stream never ends",
}
DEFAULT_CHECKS = "not_a_server_error,response_schema_conformance"


class FuzzError(Exception):
    """The run could not happen (no network namespace, the server did not start)."""


def main(argv: list[str] | None = None) -> int:
    """Fuzz the API; 0 when no 5xx was found, 1 otherwise, 2 when the run could not happen."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if os.environ.get(ISOLATED) != "1":
            return isolated(sys.argv[1:] if argv is None else argv)
        return run(args)
    except FuzzError as exc:
        print(f"fuzz_api: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fuzz_api: interrupted", file=sys.stderr)
        return 130


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument("--max-examples", type=int, default=150, help="cases per operation")
    p.add_argument(
        "--phases", default="examples,coverage,fuzzing", help="schemathesis phases to run"
    )
    p.add_argument("--checks", default=DEFAULT_CHECKS, help="schemathesis checks")
    p.add_argument("--workers", default="2", help="schemathesis workers (1-64 or auto)")
    p.add_argument("--seed", type=int, default=20261121, help="generation seed")
    p.add_argument("--max-time", type=int, help="time budget of the whole run, seconds")
    p.add_argument("--include-path-regex", help="fuzz only the operations whose path matches")
    p.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results" / "fuzz_api.json", help="JSON results"
    )
    p.add_argument("--keep-log", action="store_true", help="print the server log at the end")
    p.add_argument("--store", help="store URL (default: a fresh SQLite file)")
    p.add_argument("--events", type=Path, help="keep schemathesis' NDJSON events in this file")
    return p.parse_args(argv)


# --- isolation -----------------------------------------------------------------------------


def isolated(argv: list[str]) -> int:
    """Run this script again in a new network namespace with only loopback up."""
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not Path(ip).exists():
        raise FuzzError("needs unshare (util-linux) and ip (iproute2) to isolate the run")
    cmd = [unshare, "--net"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")
    script = f'{ip} link set lo up && exec "$0" "$@"'
    cmd += ["sh", "-c", script, sys.executable, str(Path(__file__).resolve()), *argv]
    env = dict(os.environ, **{ISOLATED: "1"})
    proc = subprocess.run(cmd, env=env)
    if proc.returncode not in (0, 1, 130):
        print(f"fuzz_api: the isolated run ended with status {proc.returncode}", file=sys.stderr)
    return proc.returncode


def _check_isolated() -> None:
    """Refuse to fuzz where anything but loopback could be reached."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            # A UDP connect sends nothing: it only asks the kernel for a route.
            s.connect(("192.0.2.1", 9))
        except OSError:
            return
    raise FuzzError("this network namespace has a route out; refusing to fuzz")


# --- the server ------------------------------------------------------------------------------


@contextlib.contextmanager
def server(tmp: Path, keep_log: bool, store: str | None) -> Iterator[str]:
    """``cityverse serve`` on a free loopback port over ``store`` (SQLite in ``tmp``)."""
    port = hl.free_port()
    cmd = [*hl.cityverse_command(), "serve", "--host", HOST, "--port", str(port)]
    cmd += ["--store", store or f"sqlite:///{tmp / 'store.db'}"]
    env = dict(
        os.environ,
        CITYVERSE_LOG_LEVEL="warning",
        CITYVERSE_DATA_DIR=str(tmp),
        CITYVERSE_AUTH="off",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(REPO_DIR / "src"), env.get("PYTHONPATH", "")] if p
    )
    log_path = tmp / "server.log"
    print("starting:", " ".join(cmd), flush=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            base_url = f"http://{HOST}:{port}"
            wait_ready(proc, base_url, log_path)
            yield base_url
        finally:
            hl.stop(proc)
            if keep_log:
                print("\n--- server log ---\n" + log_path.read_text(errors="replace"))


def wait_ready(proc: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FuzzError(f"server exited with status {proc.returncode}:\n{hl.tail(log_path)}")
        try:
            r = httpx.get(base_url + DOCUMENT, timeout=2)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise FuzzError(f"server not ready after 60 s (last: {last}):\n{hl.tail(log_path)}")


# --- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    _check_isolated()
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        raise FuzzError("schemathesis is not installed: pip install -e '.[test]'")
    with tempfile.TemporaryDirectory(prefix="cityverse-fuzz-") as name:
        tmp = Path(name)
        report = tmp / "events.ndjson"
        if args.store:
            from cityverse.demo.load import reset_store

            reset_store(args.store)
        with server(tmp, args.keep_log, args.store) as base_url:
            cmd = [
                str(st),
                "run",
                base_url + DOCUMENT,
                "--checks",
                args.checks,
                "--phases",
                args.phases,
                "--max-examples",
                str(args.max_examples),
                "--workers",
                str(args.workers),
                "--seed",
                str(args.seed),
                "--request-timeout",
                "30",
                "--suppress-health-check",
                "all",
                "--continue-on-failure",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(report),
                "--no-color",
            ]
            for operation_id in EXCLUDED:
                cmd += ["--exclude-operation-id", operation_id]
            if args.max_time:
                cmd += ["--max-time", str(args.max_time)]
            if args.include_path_regex:
                cmd += ["--include-path-regex", args.include_path_regex]
            print("running:", " ".join(cmd), flush=True)
            started = time.monotonic()
            # In the scratch directory: schemathesis keeps a cache where it runs.
            st_run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
            elapsed = time.monotonic() - started
            log = _server_errors(tmp / "server.log")
        if args.events:
            shutil.copyfile(report, args.events)
        results = summarise(report, elapsed, args)
        results["schemathesis_exit_status"] = st_run.returncode
        results["server_logged_errors"] = log
        if not results["operations"]:
            print(st_run.stdout[-5000:], st_run.stderr[-5000:], sep="\n")
            raise FuzzError("schemathesis reported no operation")
    print_summary(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {args.out}")
    return 1 if results["server_errors"] else 0


def _server_errors(path: Path) -> list[str]:
    """The first lines of each unexpected error the server logged."""
    lines = path.read_text(errors="replace").splitlines()
    found = [
        "\n".join(lines[i : i + 3]) for i, line in enumerate(lines) if "unexpected error" in line
    ]
    return found[:50]


def summarise(report: Path, elapsed: float, args: argparse.Namespace) -> dict[str, Any]:
    """Cases and failures per operation from schemathesis' NDJSON events."""
    cases: Counter[str] = Counter()
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    failures: dict[tuple[str, str, str], dict[str, Any]] = {}
    for raw in report.read_text().splitlines():
        finished = json.loads(raw).get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder") or {}
        label = recorder.get("label") or "?"
        interactions = recorder.get("interactions") or {}
        for interaction in interactions.values():
            response = interaction.get("response") or {}
            cases[label] += 1
            statuses[label][str(response.get("status_code", "no answer"))] += 1
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if check.get("status") != "failure":
                    continue
                failure = (check.get("failure_info") or {}).get("failure") or {}
                title = str(failure.get("title") or check.get("name"))
                key = (label, str(check.get("name")), title)
                if key not in failures:
                    request = (interactions.get(case_id) or {}).get("request") or {}
                    failures[key] = {
                        "operation": label,
                        "check": check.get("name"),
                        "title": title,
                        "message": str(failure.get("message", ""))[:500],
                        "request": _request(request),
                    }
    server_errors = [f for f in failures.values() if f["check"] == "not_a_server_error"]
    other = [f for f in failures.values() if f["check"] != "not_a_server_error"]
    return {
        "benchmark": "fuzz_api",
        "machine": machine(),
        "settings": {
            "max_examples_per_operation": args.max_examples,
            "phases": args.phases,
            "checks": args.checks,
            "workers": args.workers,
            "seed": args.seed,
            "store": args.store.split(":", 1)[0] if args.store else "sqlite",
            "excluded": EXCLUDED,
        },
        "elapsed_s": round(elapsed, 1),
        "cases_total": sum(cases.values()),
        "operations": {
            label: {"cases": cases[label], "statuses": dict(sorted(statuses[label].items()))}
            for label in sorted(cases)
        },
        "server_errors": server_errors,
        "other_failures": other,
    }


def _request(request: dict[str, Any]) -> str:
    """A failing request, short enough to read: method, URL, headers and body."""
    headers = {
        k: v[0] if isinstance(v, list) and len(v) == 1 else v
        for k, v in (request.get("headers") or {}).items()
        if k != "Authorization"
    }
    body = request.get("body")
    if isinstance(body, dict) and "$base64" in body:
        body = base64.b64decode(body["$base64"]).decode(errors="replace")
    text = f"{request.get('method')} {request.get('uri')} headers={json.dumps(headers)}"
    if body:
        text += f" body={str(body)[:600]}"
    return text


def print_summary(results: dict[str, Any]) -> None:
    print(f"\n{'operation':<75} {'cases':>6}  statuses")
    for label, op in results["operations"].items():
        statuses = " ".join(f"{k}:{v}" for k, v in op["statuses"].items())
        print(f"{label:<75} {op['cases']:>6}  {statuses}")
    print(
        f"\n{results['cases_total']} cases over {len(results['operations'])} operations"
        f" in {results['elapsed_s']} s"
    )
    for title, items in (("5xx", results["server_errors"]), ("other", results["other_failures"])):
        print(f"{title} failures: {len(items)}")
        for f in items:
            print(f"  {f['operation']}: {f['check']}: {f['title']}\n    {f['request'][:400]}")


def machine() -> dict[str, Any]:
    """Where the figures come from (as ``http_load``), with the load and schemathesis."""
    st = str(Path(sys.executable).parent / "st")
    return {
        **hl.machine(),
        "load_average": os.getloadavg(),
        "schemathesis": _output([st, "--version"]),
    }


def _output(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
