"""The official Smart Data Models examples are accepted, stored and returned equal after
JSON-LD expansion (GS CIM 009 4.5, 5.6.1, 5.7.1).

The oracle is an independent JSON-LD processor (pyld), given the same @context
documents from shared/ with no network. NGSI-LD appends the core @context to every
request's context, so the oracle does the same for the posted document.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pyld import jsonld

from tests.api.helpers import LD, link

pytestmark = pytest.mark.asyncio

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


def _canonical(value: Any) -> Any:
    """Expanded JSON-LD with arrays sorted, so that set order does not matter."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    return value


def _expand(doc: dict[str, Any]) -> Any:
    return _canonical(jsonld.expand(doc, {"documentLoader": _loader}))


EXAMPLES = _examples()


@pytest.mark.parametrize(
    "path", EXAMPLES, ids=[f"{p.parts[-4]}/{p.parts[-3]}/{p.name}" for p in EXAMPLES]
)
async def test_example_round_trips(client: httpx.AsyncClient, path: Path) -> None:
    """Each example is created with its own @context and read back equal after expansion."""
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
    assert r.status_code == 201, r.text
    key_values = path.name == "example.jsonld"
    query = "?options=keyValues" if key_values else ""
    user = [c for c in contexts if c not in (CORE_URL,)]
    headers = {"Accept": LD}
    if len(user) == 1 and isinstance(user[0], str):
        headers.update(link(user[0]))
    else:
        pytest.fail(f"{path}: expected one user @context URL, got {contexts}")
    got = await client.get(f"/ngsi-ld/v1/entities/{doc['id']}{query}", headers=headers)
    assert got.status_code == 200, got.text
    posted = {**doc, "@context": [*contexts, CORE_URL]}
    assert _expand(got.json()) == _expand(posted)


def test_every_example_found() -> None:
    """The fixture set is complete: both representations of every subject's types."""
    if not EXAMPLES:
        pytest.skip(f"Smart Data Models fixtures not found at {SDM}")
    assert len(EXAMPLES) >= 90
