"""The official Smart Data Models examples are accepted, stored and returned equal after
JSON-LD expansion (GS CIM 009 4.5, 5.6.1, 5.7.1).

The oracle is an independent JSON-LD processor (pyld), given the same @context
documents from shared/ with no network. NGSI-LD appends the core @context to every
request's context, so the oracle does the same for the posted document.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from pyld import jsonld

from tests.api.helpers import LD, link

SHARED = Path(__file__).resolve().parents[3] / "shared"
SDM = SHARED / "smart-data-models"
CORE_DIR = SHARED / "ngsi-ld"
CORE_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


def _examples() -> list[Path]:
    if not SDM.is_dir():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"the Smart Data Models fixtures are missing: {SDM}")
        return []
    files = sorted(SDM.glob("*/*/examples/example-normalized.jsonld"))
    files += sorted(SDM.glob("*/*/examples/example.jsonld"))
    return files


def _read(path: Path) -> Any:
    """A JSON document; some published context files start with their URL on a line."""
    text = path.read_text()
    return orjson.loads(text[text.index("{") :])


def _documents() -> dict[str, Any]:
    """URL -> @context document, as the broker bundles them (from shared/)."""
    docs: dict[str, Any] = {}
    core = _read(CORE_DIR / "ngsi-ld-core-context-v1.9.jsonld")
    for version in ("", "-v1.5", "-v1.6", "-v1.7", "-v1.8", "-v1.9"):
        docs[f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context{version}.jsonld"] = core
    for version in ("1.3", "1.4"):
        path = CORE_DIR / f"ngsi-ld-core-context-v{version}.jsonld"
        docs[f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld"] = _read(
            path
        )
    # Scoped context of the core's "ngsildproof" term, unused by these examples.
    docs["https://w3id.org/security/data-integrity/v2"] = {"@context": {}}
    for subject in SDM.glob("dataModel.*"):
        doc = _read(subject / "context.jsonld")
        docs[
            f"https://raw.githubusercontent.com/smart-data-models/{subject.name}/master/context.jsonld"
        ] = doc
        docs[f"https://smart-data-models.github.io/{subject.name}/context.jsonld"] = doc
    return docs


DOCUMENTS = _documents() if SDM.is_dir() else {}


def _loader(url: str, options: Any = None) -> dict[str, Any]:
    if url not in DOCUMENTS:
        raise jsonld.JsonLdError(
            "not bundled", "jsonld.LoadDocumentError", code="loading document failed"
        )
    return {"contextUrl": None, "documentUrl": url, "document": DOCUMENTS[url]}


def _contexts(doc: dict[str, Any]) -> list[Any]:
    ctx = doc.get("@context", [])
    return list(ctx) if isinstance(ctx, list) else [ctx]


HAS_VALUE = "https://uri.etsi.org/ngsi-ld/hasValue"
DATE_TIME = "https://uri.etsi.org/ngsi-ld/DateTime"


def _canonical(value: Any, concise: bool) -> Any:
    """Expanded JSON-LD with arrays sorted (set order does not matter), DateTimes as
    instants, and, for concise documents, {"value": x} the same as x (4.5.?)."""
    if isinstance(value, dict):
        if value.get("@type") == DATE_TIME and isinstance(value.get("@value"), str):
            instant = datetime.fromisoformat(value["@value"].replace("Z", "+00:00"))
            return {"@type": DATE_TIME, "@value": instant.astimezone(UTC).isoformat()}
        return {k: _canonical(v, concise) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = []
        for v in value:
            if concise and isinstance(v, dict) and list(v) == [HAS_VALUE]:
                items.extend(_canonical(x, concise) for x in v[HAS_VALUE])
            else:
                items.append(_canonical(v, concise))
        return sorted(items, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    return value


def _expand(doc: dict[str, Any], concise: bool) -> Any:
    return _canonical(jsonld.expand(doc, {"documentLoader": _loader}), concise)


EXAMPLES = _examples()

URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")

INVALID = {
    # Each of these examples breaks GS CIM 009 and must be refused with 400.
    "dataModel.Environment/FloodMonitoring/example-normalized.jsonld": "attribute type 'string'",
    "dataModel.Environment/PhreaticObserved/example-normalized.jsonld": "observedAt '...TT...'",
    "dataModel.Environment/WaterObserved/example-normalized.jsonld": "Relationship to a date",
}
SYSTEM = ("createdAt", "modifiedAt", "deletedAt")


def _without_system(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without system-generated members, which the broker sets itself (4.8)."""
    clean: dict[str, Any] = {}
    for key, value in doc.items():
        if key in SYSTEM:
            continue
        if isinstance(value, dict) and key != "@context":
            value = {k: v for k, v in value.items() if k not in SYSTEM}
        clean[key] = value
    return clean


async def _link_for(client: httpx.AsyncClient, contexts: list[Any]) -> str:
    """One URL for the user's @contexts: itself, or a hosted context importing them all."""
    if len(contexts) == 1 and isinstance(contexts[0], str):
        return str(contexts[0])
    r = await client.post("/ngsi-ld/v1/jsonldContexts", json={"@context": contexts})
    assert r.status_code == 201, r.text
    return r.headers["location"]


def _name(path: Path) -> str:
    return f"{path.parts[-4]}/{path.parts[-3]}/{path.name}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[_name(p) for p in EXAMPLES])
async def test_example_round_trips(client: httpx.AsyncClient, path: Path) -> None:
    """Each example is created with its own @context and read back equal after expansion.

    Key-value examples are the concise representation (4.5.?): they are read back with
    format=concise, which keeps what they say (sub-attributes included).
    """
    doc = orjson.loads(path.read_bytes())
    contexts = _contexts(doc)
    missing = [c for c in contexts if isinstance(c, str) and c not in DOCUMENTS]
    r = await client.post(
        "/ngsi-ld/v1/entities", content=orjson.dumps(doc), headers={"Content-Type": LD}
    )
    if missing:
        # Those @contexts are not bundled and there is no network: the broker must say so.
        assert r.status_code == 503, r.text
        assert r.json()["type"].endswith("LdContextNotAvailable")
        assert missing[0] in r.json()["detail"]
        return
    if not URI.fullmatch(str(doc.get("id"))) or _name(path) in INVALID:
        assert r.status_code == 400, r.text
        assert r.json()["type"].endswith("BadRequestData")
        return
    assert r.status_code == 201, r.text
    query = "?format=concise" if path.name == "example.jsonld" else ""
    user = [
        c for c in contexts if not (isinstance(c, str) and c.startswith("https://uri.etsi.org/"))
    ]
    headers = {"Accept": LD, **link(await _link_for(client, user))}
    entity_id = quote(doc["id"], safe="")
    got = await client.get(f"/ngsi-ld/v1/entities/{entity_id}{query}", headers=headers)
    assert got.status_code == 200, got.text
    body = got.json()
    # The answer names the request's @context; the oracle expands with the documents.
    assert headers["Link"].split(">")[0][1:] in str(body["@context"])
    body["@context"] = [*contexts, CORE_URL]
    posted = {**_without_system(doc), "@context": [*contexts, CORE_URL]}
    concise = path.name == "example.jsonld"
    assert _expand(body, concise) == _expand(posted, concise)


def test_every_example_found() -> None:
    """The fixture set is complete: both representations of every subject's types."""
    if not EXAMPLES:
        pytest.skip(f"Smart Data Models fixtures not found at {SDM}")
    assert len(EXAMPLES) >= 90
