"""Tests of @context processing (GS CIM 009: 5.5.7 term to URI expansion, 6.3.5 @context
resolution, 5.13 @context management, Annex B core @context)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityverse.core.context import (
    CORE_CONTEXT_URL,
    JSONLD_CONTEXT_REL,
    SDM_SUBJECTS,
    Context,
    ContextResolver,
    bundled_file,
    load_bundled,
)
from cityverse.core.errors import BadRequestData, LdContextNotAvailable
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB, LOCATION, NGSI_LD

EPANET = "dataModel.WaterDistributionManagementEPANET"
EPANET_URL = f"https://raw.githubusercontent.com/smart-data-models/{EPANET}/master/context.jsonld"
SDM_BASE = "https://smartdatamodels.org/"


class FakeWeb:
    """Documents by URL; counts fetches; can fail or stall."""

    def __init__(self, docs: dict[str, Any] | None = None) -> None:
        self.docs = dict(docs or {})
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, url: str) -> Any:
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        if url not in self.docs:
            raise httpx.ConnectError(f"cannot connect to {url}")
        doc = self.docs[url]
        if isinstance(doc, BaseException):
            raise doc
        return doc


def offline() -> ContextResolver:
    """A resolver for which any network access is a test failure."""

    async def no_network(url: str) -> Any:
        raise AssertionError(f"network access to {url}")

    return ContextResolver(fetch=no_network)


def core_terms() -> dict[str, Any]:
    context: dict[str, Any] = load_bundled(bundled_file(CORE_CONTEXT_URL) or "")["@context"]
    return context


# --- Annex B: the core @context -----------------------------------------------------------


def test_core_terms_expand_to_ngsi_ld_namespace() -> None:
    """Annex B: core terms map to https://uri.etsi.org/ngsi-ld/ IRIs."""
    core = offline().core
    assert core.expand("location") == LOCATION
    assert core.expand("observedAt") == NGSI_LD + "observedAt"
    assert core.expand("Property") == NGSI_LD + "Property"
    assert core.expand("GeoProperty") == NGSI_LD + "GeoProperty"


def test_core_keyword_aliases_are_not_attributes() -> None:
    """Annex B: "id" and "type" alias the JSON-LD keywords @id and @type."""
    core = offline().core
    assert core.expand("id") == "@id"
    assert core.expand("type") == "@type"
    assert core.expand("@id") == "@id"
    assert core.compact("@type") == "type"


def test_every_core_term_round_trips() -> None:
    """Annex B: each core term compacts back to itself under the core context."""
    core = offline().core
    for term in core_terms():
        if not term.startswith("@"):
            assert core.compact(core.expand(term)) == term


def test_unknown_term_goes_to_default_context_and_back() -> None:
    """5.5.7: a term not in the @context expands with the default context."""
    core = offline().core
    assert core.vocab == DEFAULT_CONTEXT_VOCAB
    assert core.expand("leakRate") == DEFAULT_CONTEXT_VOCAB + "leakRate"
    assert core.compact(DEFAULT_CONTEXT_VOCAB + "leakRate") == "leakRate"


def test_absolute_iris_stay_as_they_are() -> None:
    """5.5.7: a name that already is a URI is not expanded."""
    core = offline().core
    for iri in ("http://example.org/a", "https://example.org/b#c", "urn:ngsi-ld:x:1"):
        assert core.expand(iri) == iri
        assert core.compact(iri) == iri


def test_core_prefix_makes_compact_iris() -> None:
    """5.5.7: "ngsi-ld:" is a prefix of the core @context, both ways."""
    core = offline().core
    assert core.expand("ngsi-ld:someName") == NGSI_LD + "someName"
    assert core.compact(NGSI_LD + "someName") == "ngsi-ld:someName"


# --- 6.3.5: which @context a request uses ------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.4.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
        CORE_CONTEXT_URL,
    ],
)
async def test_core_context_urls_need_no_network(url: str) -> None:
    """6.3.5: the core @context is known to the broker; its URLs are served locally."""
    ctx = await offline().resolve(url)
    assert ctx.expand("location") == LOCATION
    assert ctx.document() == CORE_CONTEXT_URL


@pytest.mark.parametrize("subject", SDM_SUBJECTS)
async def test_smart_data_models_contexts_are_bundled(subject: str) -> None:
    """6.3.5: Smart Data Models contexts resolve offline and every term round-trips."""
    resolver = offline()
    for url in (
        f"https://raw.githubusercontent.com/smart-data-models/dataModel.{subject}/master/context.jsonld",
        f"https://smart-data-models.github.io/dataModel.{subject}/context.jsonld",
    ):
        ctx = await resolver.resolve(url)
        terms = load_bundled(bundled_file(url) or "")["@context"]
        for term, definition in terms.items():
            if term.startswith("@") or term in ("id", "type"):
                continue
            iri = ctx.expand(term)
            if term not in core_terms():
                wanted = definition if isinstance(definition, str) else definition["@id"]
                assert iri == wanted
            assert ctx.compact(iri) == term


async def test_epanet_pipe_type() -> None:
    """6.3.5: the EPANET entity type "Pipe" expands to its Smart Data Models IRI."""
    ctx = await offline().resolve([EPANET_URL, CORE_CONTEXT_URL])
    assert ctx.expand("Pipe") == f"{SDM_BASE}{EPANET}/Pipe"
    assert ctx.compact(f"{SDM_BASE}{EPANET}/Pipe") == "Pipe"
    assert ctx.expand("location") == LOCATION
    assert ctx.document() == [EPANET_URL, CORE_CONTEXT_URL]


async def test_unbundled_context_is_fetched() -> None:
    """6.3.5: a context that is not bundled (e.g. dataModel.Transportation) is fetched."""
    url = "https://smart-data-models.github.io/dataModel.Transportation/context.jsonld"
    web = FakeWeb({url: {"@context": {"Vehicle": "https://smartdatamodels.org/Vehicle"}}})
    ctx = await ContextResolver(fetch=web).resolve(url)
    assert web.calls == [url]
    assert ctx.expand("Vehicle") == "https://smartdatamodels.org/Vehicle"


# --- inline contexts, prefixes, @vocab, lists -----------------------------------------


async def test_inline_object_and_whole_document() -> None:
    """6.3.5: an inline @context object, given bare or as a document, defines terms."""
    resolver = offline()
    local = {"temperature": "http://example.org/temperature"}
    for source in (local, {"@context": local}, {"@context": [local]}):
        ctx = await resolver.resolve(source)
        assert ctx.expand("temperature") == "http://example.org/temperature"
        assert ctx.compact("http://example.org/temperature") == "temperature"
    assert (await resolver.resolve(local)).document() == [local, CORE_CONTEXT_URL]


async def test_expanded_term_definitions() -> None:
    """5.5.7: a term defined by an object uses its @id; @type, @container are accepted."""
    ctx = await offline().resolve(
        {
            "ex": "http://example.org/",
            "reading": {"@id": "ex:reading", "@type": "@vocab", "@container": "@list"},
            "scoped": {"@id": "ex:scoped", "@context": {"inner": "ex:inner"}},
        }
    )
    assert ctx.expand("reading") == "http://example.org/reading"
    assert ctx.expand("scoped") == "http://example.org/scoped"
    assert ctx.expand_vocab("reading") == "http://example.org/reading"
    assert ctx.compact_vocab("http://example.org/reading") == "reading"


async def test_compact_iris_with_user_prefixes() -> None:
    """5.5.7: compact IRIs use prefixes ending in a delimiter or marked "@prefix": true."""
    ctx = await offline().resolve(
        {
            "ex": "http://example.org/ns#",
            "noDelim": "http://example.org/plain",
            "flagged": {"@id": "http://example.org/flag", "@prefix": True},
            "chained": "ex:chained",
        }
    )
    assert ctx.expand("ex:pressure") == "http://example.org/ns#pressure"
    assert ctx.compact("http://example.org/ns#pressure") == "ex:pressure"
    assert ctx.expand("chained") == "http://example.org/ns#chained"
    assert ctx.expand("noDelim:x") == "noDelim:x"
    assert ctx.expand("flagged:x") == "http://example.org/flagx"
    assert ctx.compact("http://example.org/flagx") == "flagged:x"


async def test_forward_references_inside_one_object() -> None:
    """5.5.7: a term may use a prefix defined later in the same context object."""
    ctx = await offline().resolve({"a": "p:a", "p": "http://p.example/"})
    assert ctx.expand("a") == "http://p.example/a"


async def test_user_vocab_replaces_default_context() -> None:
    """5.5.7: a user @vocab applies to unknown terms instead of the default context."""
    ctx = await offline().resolve({"@vocab": "http://vocab.example/"})
    assert ctx.expand("flow") == "http://vocab.example/flow"
    assert ctx.compact("http://vocab.example/flow") == "flow"
    assert ctx.expand("location") == LOCATION
    # The default context is no longer the vocabulary: its IRIs need a prefix.
    assert ctx.compact(DEFAULT_CONTEXT_VOCAB + "flow") != "flow"
    assert ctx.expand(ctx.compact(DEFAULT_CONTEXT_VOCAB + "flow")) == DEFAULT_CONTEXT_VOCAB + "flow"


async def test_later_entries_override_and_null_resets() -> None:
    """6.3.5: in an array of contexts later entries win; null resets the user terms."""
    resolver = offline()
    first = {"speed": "http://a.example/speed"}
    second = {"speed": "http://b.example/speed"}
    ctx = await resolver.resolve([first, second])
    assert ctx.expand("speed") == "http://b.example/speed"
    ctx = await resolver.resolve([first, None])
    assert ctx.expand("speed") == DEFAULT_CONTEXT_VOCAB + "speed"
    assert ctx.expand("location") == LOCATION


async def test_core_terms_are_protected() -> None:
    """Annex B: a user context cannot redefine a core term; the core context wins."""
    ctx = await offline().resolve(
        {"location": "http://evil.example/location", "myLocation": LOCATION}
    )
    assert ctx.expand("location") == LOCATION
    assert ctx.compact("http://evil.example/location") != "location"
    # Two names for one IRI: the client's own is given back.
    assert ctx.compact(LOCATION) == "myLocation"


async def test_user_context_may_use_core_prefixes() -> None:
    """Annex B: "ngsi-ld:" in a user context resolves through the core context."""
    ctx = await offline().resolve({"temp": "ngsi-ld:temperature"})
    assert ctx.expand("temp") == NGSI_LD + "temperature"
    assert ctx.compact(NGSI_LD + "temperature") == "temp"


# --- document() and link_header() -------------------------------------------------------


async def test_response_context_and_link_header() -> None:
    """6.3.5: responses carry the user's @context followed by the core one."""
    resolver = offline()
    core = resolver.core
    assert core.document() == CORE_CONTEXT_URL
    assert core.link_header() == (
        f'<{CORE_CONTEXT_URL}>; rel="{JSONLD_CONTEXT_REL}"; type="application/ld+json"'
    )
    ctx = await resolver.resolve(EPANET_URL)
    assert ctx.document() == [EPANET_URL, CORE_CONTEXT_URL]
    assert ctx.link_header() == (
        f'<{EPANET_URL}>; rel="{JSONLD_CONTEXT_REL}"; type="application/ld+json"'
    )
    inline = await resolver.resolve({"a": "http://a.example/"})
    assert inline.link_header() is None


# --- remote and hosted contexts -----------------------------------------------------------


async def test_nested_remote_contexts() -> None:
    """6.3.5: a fetched document's @context may itself refer to other contexts."""
    web = FakeWeb(
        {
            "https://ctx.example/top.jsonld": {
                "@context": ["inner.jsonld", {"top": "https://ctx.example/ns/top"}]
            },
            "https://ctx.example/inner.jsonld": {
                "@context": {"inner": "https://ctx.example/ns/inner"}
            },
        }
    )
    ctx = await ContextResolver(fetch=web).resolve("https://ctx.example/top.jsonld")
    assert ctx.expand("inner") == "https://ctx.example/ns/inner"
    assert ctx.expand("top") == "https://ctx.example/ns/top"
    assert web.calls == ["https://ctx.example/top.jsonld", "https://ctx.example/inner.jsonld"]


async def test_remote_context_cycle_is_refused() -> None:
    """6.3.5: contexts that include each other cannot be resolved."""
    web = FakeWeb(
        {
            "https://a.example/c": {"@context": "https://b.example/c"},
            "https://b.example/c": {"@context": "https://a.example/c"},
        }
    )
    with pytest.raises(LdContextNotAvailable, match="includes itself"):
        await ContextResolver(fetch=web).resolve("https://a.example/c")


async def test_import_merges_a_remote_object() -> None:
    """5.5.7: @import brings in a remote context object, the importing one winning."""
    web = FakeWeb({"https://i.example/c": {"@context": {"a": "http://i/a", "b": "http://i/b"}}})
    ctx = await ContextResolver(fetch=web).resolve(
        {"@import": "https://i.example/c", "b": "http://mine/b"}
    )
    assert ctx.expand("a") == "http://i/a"
    assert ctx.expand("b") == "http://mine/b"


async def test_hosted_contexts_are_looked_up_locally() -> None:
    """5.13: contexts hosted by the broker are served without fetching."""
    hosted = {"abc": {"@context": {"pressure": "http://hosted.example/pressure"}}}
    asked: list[str] = []

    async def local(context_id: str) -> dict[str, Any] | None:
        asked.append(context_id)
        return hosted.get(context_id)

    web = FakeWeb()
    resolver = ContextResolver(fetch=web, local=local)
    ctx = await resolver.resolve("http://localhost:1026/ngsi-ld/v1/jsonldContexts/abc")
    assert ctx.expand("pressure") == "http://hosted.example/pressure"
    assert asked == ["abc"] and web.calls == []
    with pytest.raises(LdContextNotAvailable, match="not hosted"):
        await resolver.resolve("http://localhost:1026/ngsi-ld/v1/jsonldContexts/nope")


# --- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError("connection refused"),
        httpx.HTTPStatusError(
            "404", request=httpx.Request("GET", "https://x"), response=httpx.Response(404)
        ),
        ValueError("not JSON"),
    ],
)
async def test_unreachable_context_is_503(answer: BaseException) -> None:
    """6.3.5: a @context that cannot be retrieved gives LdContextNotAvailable."""
    url = "https://down.example/ctx.jsonld"
    with pytest.raises(LdContextNotAvailable) as info:
        await ContextResolver(fetch=FakeWeb({url: answer})).resolve(url)
    assert url in info.value.detail
    assert info.value.status == 503


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([1, 2], "not an object"),
        ({"name": "x"}, "no @context"),
        ({"@context": 42}, "not valid"),
        ({"@context": {"a": 3}}, "not valid"),
    ],
)
async def test_invalid_remote_document_is_503(document: Any, reason: str) -> None:
    """6.3.5: a retrieved document that is not a valid @context is LdContextNotAvailable."""
    url = "https://bad.example/ctx.jsonld"
    web = FakeWeb({url: document})
    resolver = ContextResolver(fetch=web)
    with pytest.raises(LdContextNotAvailable, match=reason) as info:
        await resolver.resolve(url)
    assert url in info.value.detail
    assert resolver.cached() == []


async def test_fetch_timeout_is_503() -> None:
    """6.3.5: a @context server that does not answer in time gives LdContextNotAvailable."""
    web = FakeWeb({"https://slow.example/c": {"@context": {}}})
    web.gate = asyncio.Event()  # never set
    resolver = ContextResolver(fetch=web, timeout=0.05)
    with pytest.raises(LdContextNotAvailable, match="in time"):
        await resolver.resolve("https://slow.example/c")


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (42, "a number"),
        ({"a": 1}, "term 'a'"),
        ({"a": ["http://x"]}, "term 'a'"),
        ([{"a": "http://a/"}, 3], "@context\\[1\\]"),
        ([[CORE_CONTEXT_URL]], "array"),
        ({"a": {"@id": 5}}, "@id"),
        ({"@vocab": 5}, "@vocab"),
        ({"a": "b", "b": "a"}, "cyclic"),
        ("not a url", "not an http"),
        ({"@context": True}, "boolean"),
        ({"": "http://x/"}, "empty"),
    ],
)
async def test_malformed_inline_context_is_bad_request_data(source: Any, reason: str) -> None:
    """6.3.5: an inline @context that is not a valid JSON-LD context is BadRequestData."""
    with pytest.raises(BadRequestData, match=reason):
        await offline().resolve(source)


# --- caching (5.13 @context management) ------------------------------------------------


async def test_remote_context_fetched_once_and_hits_counted() -> None:
    """5.13.3: a cached @context is listed with its kind and number of hits."""
    url = "https://c.example/ctx.jsonld"
    web = FakeWeb({url: {"@context": {"flow": "http://c.example/flow"}}})
    resolver = ContextResolver(fetch=web)
    for _ in range(3):
        await resolver.resolve(url)
    await resolver.resolve([url, {"x": "http://x/"}])
    assert web.calls == [url]
    [entry] = resolver.cached()
    assert entry["url"] == url and entry["kind"] == "Cached"
    assert entry["numberOfHits"] == 4
    assert entry["createdAt"] <= entry["lastUsage"]


async def test_concurrent_resolves_fetch_once() -> None:
    """6.3.5: many requests with one new @context URL make one fetch."""
    url = "https://c.example/ctx.jsonld"
    web = FakeWeb({url: {"@context": {"flow": "http://c.example/flow"}}})
    web.gate = asyncio.Event()
    resolver = ContextResolver(fetch=web)
    tasks = [asyncio.create_task(resolver.resolve([url, {"n": f"http://n/{i}"}])) for i in range(5)]
    await asyncio.sleep(0)
    web.gate.set()
    contexts = await asyncio.gather(*tasks)
    assert web.calls == [url]
    assert all(c.expand("flow") == "http://c.example/flow" for c in contexts)


async def test_failed_fetch_is_not_cached() -> None:
    """6.3.5: after a failure the next request tries the URL again."""
    url = "https://flaky.example/c"
    web = FakeWeb()
    resolver = ContextResolver(fetch=web)
    with pytest.raises(LdContextNotAvailable):
        await resolver.resolve(url)
    web.docs[url] = {"@context": {"ok": "http://ok/"}}
    ctx = await resolver.resolve(url)
    assert ctx.expand("ok") == "http://ok/"
    assert web.calls == [url, url]


async def test_forget_reloads_on_next_use() -> None:
    """5.13.5: deleting a cached @context makes the next use fetch it again."""
    url = "https://c.example/ctx.jsonld"
    web = FakeWeb({url: {"@context": {"flow": "http://c.example/v1"}}})
    resolver = ContextResolver(fetch=web)
    assert (await resolver.resolve(url)).expand("flow") == "http://c.example/v1"
    web.docs[url] = {"@context": {"flow": "http://c.example/v2"}}
    assert resolver.forget(url) is True
    assert resolver.forget(url) is False
    assert (await resolver.resolve(url)).expand("flow") == "http://c.example/v2"
    assert len(web.calls) == 2


async def test_processed_contexts_are_cached() -> None:
    """6.3.5: the same @context gives the same processed Context object."""
    resolver = offline()
    one = await resolver.resolve({"a": "http://a/", "b": "http://b/"})
    two = await resolver.resolve({"b": "http://b/", "a": "http://a/"})
    assert one is two


# --- properties --------------------------------------------------------------------------

# Attribute names as 4.6.2 allows them (no ':' so that they are plain terms).
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True)


def resolved(source: Any) -> Context:
    return asyncio.run(offline().resolve(source))


CORE = offline().core
SDM = resolved(EPANET_URL)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(name=names)
def test_round_trip_under_core_and_sdm(name: str) -> None:
    """5.5.7: compacting an expanded name gives the name back (core and SDM contexts)."""
    for ctx in (CORE, SDM):
        assert ctx.compact(ctx.expand(name)) == name


@settings(max_examples=300)
@given(text=st.text())
def test_expand_is_total_and_compact_is_its_inverse(text: str) -> None:
    """5.5.7: expansion never fails, and a compacted IRI expands to the same IRI."""
    for ctx in (CORE, SDM):
        iri = ctx.expand(text)
        assert isinstance(iri, str)
        assert ctx.expand(ctx.compact(iri)) == iri


def test_agrees_with_pyld_on_smart_data_models() -> None:
    """5.5.7: term expansion equals full JSON-LD 1.1 expansion (pyld) for SDM contexts."""
    jsonld = pytest.importorskip("pyld.jsonld")
    core = core_terms()

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        return {"contextUrl": None, "documentUrl": url, "document": {"@context": {}}}

    for subject in SDM_SUBJECTS:
        url = f"https://smart-data-models.github.io/dataModel.{subject}/context.jsonld"
        ctx = resolved(url)
        sdm = load_bundled(bundled_file(url) or "")["@context"]
        names_ = [t for t in sdm if not t.startswith("@") and t not in ("id", "type")]
        doc = {"@context": [sdm, core], **{t: 1 for t in [*names_, "unknownName"]}}
        [expanded] = jsonld.expand(doc, {"documentLoader": loader})
        assert sorted(expanded) == sorted(ctx.expand(t) for t in [*names_, "unknownName"])


# --- the default fetch, against a real local HTTP server -------------------------------


class _ContextServer(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes]]] = {
        "/ctx.jsonld": (200, b'{"@context": {"level": "http://srv.example/level"}}'),
        "/moved": (301, b""),
        "/html": (200, b"<html>not json</html>"),
    }

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path, (404, b"{}"))
        self.send_response(status)
        if status == 301:
            self.send_header("Location", "/ctx.jsonld")
        self.send_header("Content-Type", "application/ld+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ContextServer)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


async def test_default_fetch_gets_and_follows_redirects(server: str) -> None:
    """6.3.5: a remote @context is retrieved over HTTP, redirects followed."""
    resolver = ContextResolver(timeout=5)
    ctx = await resolver.resolve(server + "/moved")
    assert ctx.expand("level") == "http://srv.example/level"


@pytest.mark.parametrize(("path", "reason"), [("/missing", "404"), ("/html", "not JSON")])
async def test_default_fetch_failures_are_503(server: str, path: str, reason: str) -> None:
    """6.3.5: an HTTP error or a non-JSON answer gives LdContextNotAvailable."""
    with pytest.raises(LdContextNotAvailable, match=reason):
        await ContextResolver(timeout=5).resolve(server + path)


async def test_default_fetch_connection_refused_is_503() -> None:
    """6.3.5: a @context server that refuses connections gives LdContextNotAvailable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LdContextNotAvailable, match=f"127.0.0.1:{port}"):
        await ContextResolver(timeout=5).resolve(f"http://127.0.0.1:{port}/c.jsonld")
