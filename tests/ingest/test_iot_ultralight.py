"""UltraLight 2.0 as the FIWARE UltraLight agent reads and writes it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityverse.ingest.iot.ultralight import (
    UltralightError,
    format_command,
    parse_command_result,
    parse_measures,
)

# Keys and values: any text without the separators of the format.
field = st.text(
    alphabet=st.characters(blacklist_characters="|#", blacklist_categories=("Cs",)), min_size=1
).filter(lambda s: s.strip() == s)


def test_pairs() -> None:
    assert parse_measures("t|25|h|60") == [{"t": "25", "h": "60"}]


def test_groups_are_separated_by_hash() -> None:
    assert parse_measures("t|25#t|26") == [{"t": "25"}, {"t": "26"}]


def test_a_group_with_an_odd_number_of_fields_starts_with_its_timestamp() -> None:
    assert parse_measures("2024-05-01T10:00:00Z|t|25") == [
        {"t": "25", "TimeInstant": "2024-05-01T10:00:00Z"}
    ]


def test_a_leading_bar_is_ignored() -> None:
    assert parse_measures("|t|25") == [{"t": "25"}]


@pytest.mark.parametrize("payload", ["", "   ", "t", "t|", "|", "t||h|1", "t|25#", "a|1#b"])
def test_malformed_payloads_are_refused(payload: str) -> None:
    with pytest.raises(UltralightError):
        parse_measures(payload)


def test_three_fields_are_a_timestamp_and_a_pair() -> None:
    """As in the FIWARE parser: the first of an odd number of fields is the timestamp, even a
    bad one (the agent then rejects the measure for its timestamp)."""
    assert parse_measures("t|25|h") == [{"25": "h", "TimeInstant": "t"}]


def test_command_result() -> None:
    result = parse_command_result("lamp1@dim|dimmed to 50")
    assert (result.device_id, result.command, result.result) == ("lamp1", "dim", "dimmed to 50")
    with pytest.raises(UltralightError):
        parse_command_result("no at sign|x")


def test_command_payloads() -> None:
    assert format_command("lamp1", "dim", 50) == "lamp1@dim|50"
    assert format_command("v1", "set", {"open": 80, "mode": "auto"}) == "v1@set|open=80|mode=auto"
    assert format_command("v1", "on", True) == "v1@on|true"


@given(st.lists(st.lists(st.tuples(field, field), min_size=1, max_size=6), min_size=1, max_size=4))
def test_round_trip(groups: list[list[tuple[str, str]]]) -> None:
    """Any measures written as UL come back as they were (the last value of a key wins)."""
    payload = "#".join("|".join(f"{k}|{v}" for k, v in pairs) for pairs in groups)
    assert parse_measures(payload) == [dict(pairs) for pairs in groups]


@given(field, st.lists(st.tuples(field.filter(lambda k: k != "TimeInstant"), field), min_size=1))
def test_round_trip_with_timestamp(stamp: str, pairs: list[tuple[str, str]]) -> None:
    payload = stamp + "|" + "|".join(f"{k}|{v}" for k, v in pairs)
    [measures] = parse_measures(payload)
    assert measures.pop("TimeInstant") == stamp
    assert measures == dict(pairs)


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    """Whatever a device sends, the parser answers measures or UltralightError, nothing else."""
    try:
        groups = parse_measures(text)
    except UltralightError:
        return
    assert groups and all(isinstance(g, dict) and g for g in groups)
    for group in groups:
        assert all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in group.items())
