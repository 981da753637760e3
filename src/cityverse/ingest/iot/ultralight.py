"""UltraLight 2.0: the terse ``key|value`` payload of the FIWARE UltraLight IoT agent.

A measure payload is one or more groups separated by ``#``; a group is ``key|value``
pairs separated by ``|``, optionally preceded by a timestamp (a group with an odd
number of fields starts with one)::

    parse_measures("t|25|h|60")                      # [{"t": "25", "h": "60"}]
    parse_measures("2024-05-01T10:00:00Z|t|25#t|26")  # [{"TimeInstant": "...", "t": "25"},
                                                      #  {"t": "26"}]

Commands go to the device as ``device@command|value`` (or ``|k=v|k2=v2`` for an
object) and the device answers ``device@command|result``. Values stay strings: the
provisioned attribute type decides what they become.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TIMESTAMP = "TimeInstant"
"""The key a group's leading timestamp is reported under, as the FIWARE agents do."""


class UltralightError(ValueError):
    """A payload that is not valid UltraLight 2.0."""


def parse_measures(payload: str) -> list[dict[str, str]]:
    """The measure groups of a payload, each a dict of key -> raw string value."""
    text = payload.strip()
    if not text:
        raise UltralightError("empty UltraLight payload")
    return [_parse_group(group, index) for index, group in enumerate(text.split("#"))]


def _parse_group(group: str, index: int) -> dict[str, str]:
    if group.startswith("|"):
        group = group[1:]
    fields = group.split("|")
    timestamp = None
    # As the FIWARE parser does: an even, non-zero number of bars means an odd number of
    # fields, whose first one is the timestamp.
    bars = len(fields) - 1
    if bars and bars % 2 == 0:
        timestamp = fields[0]
        fields = fields[1:]
    if len(fields) % 2 or any(not field for field in fields) or timestamp == "":
        raise UltralightError(
            f"group {index + 1} {group[:80]!r} is not key|value pairs "
            "(an empty field, or a key without a value)"
        )
    measures = dict(zip(fields[::2], fields[1::2], strict=True))
    if timestamp is not None:
        measures[TIMESTAMP] = timestamp
    return measures


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A device's answer to a command: ``device@command|result``."""

    device_id: str
    command: str
    result: str


def parse_command_result(payload: str) -> CommandResult:
    """The device's answer to a command (``device@command|result``)."""
    text = payload.strip()
    head, bar, rest = text.partition("|")
    device_id, at, command = head.partition("@")
    if not at or not device_id or not command:
        raise UltralightError(f"{text[:80]!r} is not a command result like 'device@command|result'")
    return CommandResult(device_id, command, rest if bar else "")


def format_command(device_id: str, command: str, value: Any) -> str:
    """The UltraLight command for a device: ``device@command|value`` or ``|k=v`` pairs."""
    if isinstance(value, dict):
        return device_id + "@" + command + "".join(f"|{k}={_text(v)}" for k, v in value.items())
    return f"{device_id}@{command}|{_text(value)}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
