"""The audit chain: records verify, and any change to the file is detected."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cityverse.cli import main
from cityverse.security.audit import AuditLog, verify

KEY = b"k" * 32


def _log(path: Path, n: int) -> None:
    log = AuditLog(path, KEY)
    for i in range(n):
        log.record({"subject": f"key:{i}", "action": "PATCH", "path": f"/e/{i}", "status": 204})
        if i % 3 == 0:
            log.flush_now()  # several batches, as a running server writes them
    log.flush_now()


def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 10)
    result = verify(path, KEY)
    assert result.ok and result.records == 10


@pytest.mark.parametrize("tamper", ["alter", "remove", "insert", "swap", "rekey"])
def test_tampering_is_detected(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "audit.log"
    _log(path, 8)
    lines = path.read_bytes().splitlines(keepends=True)
    if tamper == "alter":
        record = orjson.loads(lines[4])
        record["subject"] = "key:someone-else"
        lines[4] = orjson.dumps(record) + b"\n"
    elif tamper == "remove":
        del lines[4]
    elif tamper == "insert":
        lines.insert(4, lines[2])
    elif tamper == "swap":
        lines[3], lines[4] = lines[4], lines[3]
    path.write_bytes(b"".join(lines))
    result = verify(path, b"x" * 32 if tamper == "rekey" else KEY)
    assert not result.ok
    assert result.line == (1 if tamper == "rekey" else 4 if tamper == "swap" else 5)
    assert result.records == result.line - 1


def test_two_writers_share_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    first, second = AuditLog(path, KEY), AuditLog(path, KEY)
    for i in range(6):
        (first if i % 2 else second).record({"n": i})
        (first if i % 2 else second).flush_now()
    assert verify(path, KEY).records == 6


def test_cli_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secret.key").write_text(KEY.hex())
    path = tmp_path / "audit.log"
    _log(path, 5)
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 0
    assert "5 records, chain intact" in capsys.readouterr().out
    path.write_bytes(path.read_bytes().replace(b"key:2", b"key:9"))
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 1
    assert "TAMPERED at line 3" in capsys.readouterr().out
