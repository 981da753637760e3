"""The @contexts of the demo's types that the broker does not bundle: hosted by the broker.

Building, Transportation (Road, RoadSegment) and Alert are Smart Data Models subjects
whose contexts are not among the bundled ones; the demo stores them as hosted contexts
(GS CIM 009 5.13) under the ids ``sdm-Building``, ``sdm-Transportation`` and
``sdm-Alert``, so that clients name them by URL and nothing is fetched from the web::

    Link: <http://127.0.0.1:1026/ngsi-ld/v1/jsonldContexts/sdm-Building>; rel="http://www.w3.org/ns/json-ld#context"
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson

from cityverse.core.context import HOSTED_CONTEXT_PATH

SUBJECTS = ("Building", "Transportation", "Alert")
DEFAULT_BASE = "http://localhost:1026"


def context_id(subject: str) -> str:
    """The hosted id of a subject's context."""
    return f"sdm-{subject}"


def hosted_url(base: str, subject: str) -> str:
    """The URL under which the broker at ``base`` serves a subject's context."""
    return (base or DEFAULT_BASE).rstrip("/") + HOSTED_CONTEXT_PATH + context_id(subject)


@cache
def document(subject: str) -> dict[str, Any]:
    """The context document of a subject (``{"@context": {...}}``), shipped with the package."""
    raw = resources.files("cityverse.demo").joinpath("data", f"sdm-{subject}.jsonld").read_bytes()
    parsed: dict[str, Any] = orjson.loads(raw)
    return parsed
