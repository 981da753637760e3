"""JSON payloads of the FIWARE JSON IoT agent: measures, commands and their results.

A measure is one JSON object (``{"t": 25, "h": 60}``) or an array of them (several
measures in one message, applied in order). A single-attribute topic carries the bare
value. Commands go to the device as ``{"command": value}`` and the device answers
``{"command": result}``.
"""

from __future__ import annotations

from typing import Any

import orjson


class JsonPayloadError(ValueError):
    """A payload that is not a valid JSON measure or command result."""


def parse_measures(payload: bytes | str) -> list[dict[str, Any]]:
    """The measures of a payload: a JSON object, or a non-empty array of objects."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise JsonPayloadError(f"not valid JSON: {exc}") from None
    if isinstance(body, dict):
        return [body]
    if isinstance(body, list) and body and all(isinstance(item, dict) for item in body):
        return body
    raise JsonPayloadError("a JSON measure must be an object or a non-empty array of objects")


def parse_value(payload: bytes | str) -> Any:
    """The value of a single-attribute message: its JSON value, else the text itself."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        return text.strip()


def parse_command_result(payload: bytes | str) -> dict[str, Any]:
    """The device's answer to commands: a JSON object of command -> result."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise JsonPayloadError(f"not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not body:
        raise JsonPayloadError('a command result must be a JSON object like {"command": result}')
    return body


def format_command(command: str, value: Any) -> bytes:
    """The JSON command for a device: ``{"command": value}``."""
    return orjson.dumps({command: value})
