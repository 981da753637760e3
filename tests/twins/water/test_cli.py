"""``cityverse import epanet``: exit codes and readable messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityverse.cli import main
from tests.twins.water.conftest import NET1, NET1_BROKEN


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_import_reports_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["import", "epanet", str(NET1), "--anchor=-2.93,35.17", "--store", _store(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "imported network 'Net1'" in out and "9 Junction" in out and "12 Pipe" in out
    again = main(
        ["import", "epanet", str(NET1), "--anchor=-2.93,35.17", "--store", _store(tmp_path)]
    )
    assert again == 1
    assert "exists" in capsys.readouterr().err


def test_a_rejected_file_gives_the_engine_error_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["import", "epanet", str(NET1_BROKEN), "--crs", "EPSG:26191", "--store", _store(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "Error 215" in err and "line 24" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crs", "EPSG:999999"], "unknown CRS"),
        (["--anchor=200,35"], "not a longitude,latitude"),
        (["--anchor=a,b"], "two numbers"),
        (["--anchor=-2.9,35", "--name", "bad name"], "network name"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["import", "epanet", str(NET1), *args, "--store", _store(tmp_path)])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_or_placement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "epanet", str(tmp_path / "none.inp"), "--crs", "EPSG:4326"]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["import", "epanet", str(NET1)])
    assert caught.value.code == 2
    assert "--crs" in capsys.readouterr().err


def test_disconnected_parts_are_reported_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = NET1.read_text().replace("[PIPES]", "[PIPES]\n 900 90 91 100 10 100 0 Open", 1)
    text = text.replace("[RESERVOIRS]", " 90 700 0 ;\n 91 700 0 ;\n\n[RESERVOIRS]", 1)
    path = tmp_path / "split.inp"
    path.write_text(text)
    code = main(["import", "epanet", str(path), "--crs", "EPSG:26191", "--store", _store(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2 junction(s) reach no tank or reservoir: 90, 91" in captured.out


def test_export_writes_an_inp_epanet_reads(tmp_path: Path) -> None:
    import argparse

    from cityverse.twins.water.cli import register_export
    from cityverse.twins.water.engine import Engine

    assert (
        main(["import", "epanet", str(NET1), "--anchor=-2.93,35.17", "--store", _store(tmp_path)])
        == 0
    )
    parser = argparse.ArgumentParser()
    register_export(parser.add_subparsers())
    out = tmp_path / "net1.inp"
    args = parser.parse_args(["epanet", "Net1", "--out", str(out), "--store", _store(tmp_path)])
    assert args.run(args) == 0
    with Engine.open(out) as exported, Engine.open(NET1) as original:
        a, b = original.run(), exported.run()
        nodes = [exported.node_index(n) for n in original.node_ids]
        assert abs(a.pressure - b.pressure[:, nodes]).max() < 1e-3
    missing = parser.parse_args(["epanet", "nope", "--store", _store(tmp_path)])
    assert missing.run(missing) == 1
