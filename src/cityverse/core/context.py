"""JSON-LD @context processing the way NGSI-LD brokers do it (GS CIM 009, 5.5.7 and 5.13).

A broker does not run full JSON-LD expansion on every request. Like Orion-LD, it turns
the request's @context into a term map once, caches it, and expands and compacts names
with dictionary lookups::

    resolver = ContextResolver()
    ctx = await resolver.resolve("https://smart-data-models.github.io/dataModel.Parking/context.jsonld")
    ctx.expand("ParkingSpot")    # 'https://smartdatamodels.org/dataModel.Parking/ParkingSpot'
    ctx.compact("https://uri.etsi.org/ngsi-ld/location")    # 'location'

The core context is always applied last and its terms win (core terms are protected).
Unknown terms expand against ``@vocab``: the user's own if a user context sets one,
otherwise the NGSI-LD default context ``https://uri.etsi.org/ngsi-ld/default-context/``.

Term definitions follow JSON-LD 1.1 (compact IRIs, prefix flags, keyword aliases,
``null`` resets, ``@import``), with one deliberate leniency: a user context may use the
prefixes of the core context (``ngsi-ld:``, ``geojson:``) without defining them, since
NGSI-LD always applies the core context; strict JSON-LD would leave such IRIs unresolved.

The core context and the Smart Data Models subject contexts are bundled and served
without network access.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from cityverse.core.errors import BadRequestData, LdContextNotAvailable, NgsiError
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
JSONLD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
HOSTED_CONTEXT_PATH = "/ngsi-ld/v1/jsonldContexts/"

MAX_NESTING = 8
"""Deepest chain of remote contexts referring to remote contexts."""
MAX_REMOTE_CONTEXTS = 32
"""Most distinct remote contexts one @context may pull in."""
MAX_CONTEXT_BYTES = 4 * 1024 * 1024
"""Largest remote context document accepted."""
_MEMO_LIMIT = 20_000

# fmt: off
KEYWORDS = frozenset({
    "@base", "@container", "@context", "@default", "@direction", "@embed", "@explicit",
    "@graph", "@id", "@import", "@included", "@index", "@json", "@language", "@list",
    "@nest", "@none", "@omitDefault", "@prefix", "@preserve", "@propagate", "@protected",
    "@requireAll", "@reverse", "@set", "@type", "@value", "@version", "@vocab",
})
# fmt: on
_GEN_DELIMS = (":", "/", "?", "#", "[", "]", "@")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")

_TERM_DEFINITION_MEMBERS: dict[str, tuple[type, ...]] = {
    "@id": (str, type(None)),
    "@reverse": (str,),
    "@type": (str, type(None)),
    "@container": (str, list, type(None)),
    "@language": (str, type(None)),
    "@direction": (str, type(None)),
    "@index": (str,),
    "@nest": (str,),
    "@prefix": (bool,),
    "@propagate": (bool,),
    "@protected": (bool,),
    "@context": (str, list, dict, type(None)),
}

# --- bundled contexts ----------------------------------------------------------------

_CORE_FILE = "ngsi-ld-core-context-v1.9.jsonld"
SDM_SUBJECTS = (
    "Environment",
    "Parking",
    "Streetlighting",
    "WasteManagement",
    "WaterDistribution",
    "WaterDistributionManagementEPANET",
    "Weather",
)


def _bundled_urls() -> dict[str, str]:
    # Keyed without the scheme so that http:// and https:// both match.
    urls = {
        "uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld": _CORE_FILE,
        "uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld": (
            "ngsi-ld-core-context-v1.3.jsonld"
        ),
        "uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.4.jsonld": (
            "ngsi-ld-core-context-v1.4.jsonld"
        ),
    }
    for minor in range(5, 10):
        urls[f"uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{minor}.jsonld"] = _CORE_FILE
    for subject in SDM_SUBJECTS:
        name = f"sdm-{subject}.jsonld"
        repo = f"smart-data-models/dataModel.{subject}"
        urls[f"raw.githubusercontent.com/{repo}/master/context.jsonld"] = name
        urls[f"smart-data-models.github.io/dataModel.{subject}/context.jsonld"] = name
    return urls


_BUNDLED = _bundled_urls()


def bundled_file(url: str) -> str | None:
    """The name of the bundled file that serves ``url``, or None."""
    for scheme in ("https://", "http://"):
        if url.startswith(scheme):
            return _BUNDLED.get(url[len(scheme) :])
    return None


def is_core_context_url(url: str) -> bool:
    """True for any version of the NGSI-LD core context URL."""
    name = bundled_file(url)
    return name is not None and name.startswith("ngsi-ld-core-context")


@cache
def load_bundled(name: str) -> Any:
    """The parsed JSON of a bundled context file (read once)."""
    data = resources.files("cityverse.core").joinpath("contexts", name).read_bytes()
    return orjson.loads(data)


def hosted_context_id(url: str) -> str | None:
    """The id in a URL of a context hosted by this broker (``.../jsonldContexts/{id}``)."""
    path = urlsplit(url).path
    at = path.find(HOSTED_CONTEXT_PATH)
    if at < 0:
        return None
    found = path[at + len(HOSTED_CONTEXT_PATH) :]
    return found or None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- term definitions ----------------------------------------------------------------


class _Builder:
    """Term definitions accumulated from local contexts, in order (JSON-LD 1.1, 4.1-4.2)."""

    def __init__(self) -> None:
        self.iris: dict[str, str] = {}
        # Terms whose IRI could not be resolved when defined: "prefix" for a compact IRI
        # with an unknown prefix, "vocab" for a relative IRI met before any @vocab.
        self.pending: dict[str, str] = {}
        self.simple: set[str] = set()
        self.prefix_flag: dict[str, bool] = {}
        self.vocab: str | None = None

    def reset(self) -> None:
        """A ``null`` context: back to the initial state."""
        self.iris.clear()
        self.pending.clear()
        self.simple.clear()
        self.prefix_flag.clear()
        self.vocab = None

    def apply(self, local: dict[str, Any], where: str) -> None:
        """Process one local context object."""
        if "@vocab" in local:
            self.vocab = self._vocab_iri(local["@vocab"], where)
        defined: dict[str, bool] = {}
        for term in local:
            if not term.startswith("@"):
                self._define(local, term, defined, where)

    def _vocab_iri(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadRequestData(
                f"{where}: @vocab must be a string or null, not {_json_type(value)}"
            )
        if value in self.iris and value not in self.pending:
            return self.iris[value]
        prefix, sep, suffix = value.partition(":")
        if sep and prefix in self.iris and prefix not in self.pending and self._is_prefix(prefix):
            return self.iris[prefix] + suffix
        return value

    def _is_prefix(self, term: str) -> bool:
        flag = self.prefix_flag.get(term)
        if flag is not None:
            return flag
        iri = self.iris[term]
        return (
            term in self.simple
            and ":" not in term
            and "/" not in term
            and iri.endswith(_GEN_DELIMS)
        )

    def _define(
        self, local: dict[str, Any], term: str, defined: dict[str, bool], where: str
    ) -> None:
        state = defined.get(term)
        if state:
            return
        if state is False:
            raise BadRequestData(f"{where}: the definition of term {term!r} is cyclic")
        if term == "":
            raise BadRequestData(f"{where}: a term cannot be the empty string")
        defined[term] = False
        value = local[term]
        resolved: tuple[str, str | None] | None
        explicit_prefix: bool | None = None
        if value is None:
            resolved = None
        elif isinstance(value, str):
            resolved = self._iri(value, local, defined, term, where)
        elif isinstance(value, dict):
            if "@id" in value:
                raw = value["@id"]
                resolved = None if raw is None else self._iri(raw, local, defined, term, where)
            elif "@reverse" in value:
                resolved = self._iri(value["@reverse"], local, defined, term, where)
            else:
                resolved = self._iri(term, local, defined, term, where)
            explicit_prefix = value.get("@prefix")
        else:  # _check_local has rejected the other types already
            raise BadRequestData(f"{where}: the definition of term {term!r} is {_json_type(value)}")
        self.pending.pop(term, None)
        self.simple.discard(term)
        self.prefix_flag.pop(term, None)
        if resolved is None:
            self.iris.pop(term, None)
        else:
            iri, pending = resolved
            self.iris[term] = iri
            if pending is not None:
                self.pending[term] = pending
            if isinstance(value, str):
                self.simple.add(term)
            if explicit_prefix is not None:
                self.prefix_flag[term] = explicit_prefix
        defined[term] = True

    def _iri(
        self, value: str, local: dict[str, Any], defined: dict[str, bool], term: str, where: str
    ) -> tuple[str, str | None] | None:
        """IRI expansion of a definition's value (JSON-LD 1.1, 5.2), with pending marks."""
        if value.startswith("@"):
            # Keyword aliases keep the keyword; other "@..." values leave the term undefined.
            return (value, None) if value in KEYWORDS else None
        if value != term:
            if value in local:
                self._define(local, value, defined, where)
            if value in self.iris:
                return self.iris[value], self.pending.get(value)
        prefix, sep, suffix = value.partition(":")
        if sep:
            if prefix == "_" or suffix.startswith("//"):
                return value, None
            if prefix != term and prefix in local:
                self._define(local, prefix, defined, where)
            if prefix in self.iris and prefix not in self.pending and self._is_prefix(prefix):
                return self.iris[prefix] + suffix, None
            return value, "prefix"
        if self.vocab is not None:
            return self.vocab + value, None
        return value, "vocab"


@cache
def _core_builder() -> _Builder:
    builder = _Builder()
    context = load_bundled(_CORE_FILE)["@context"]
    builder.apply(context, CORE_CONTEXT_URL)
    return builder


def _check_local(local: dict[str, Any], where: str) -> None:
    """Reject a local context object whose members have impossible types."""
    if "@context" in local:
        raise BadRequestData(f"{where}: a context object cannot itself have a @context member")
    for term, value in local.items():
        if not isinstance(term, str):
            raise BadRequestData(f"{where}: a term must be a string, not {_json_type(term)}")
        if term.startswith("@"):
            if term in ("@version",) and not isinstance(value, int | float):
                raise BadRequestData(f"{where}: @version must be a number")
            if term in ("@protected", "@propagate") and not isinstance(value, bool):
                raise BadRequestData(f"{where}: {term} must be true or false")
            if term in ("@base", "@language", "@direction", "@vocab") and not isinstance(
                value, str | None
            ):
                raise BadRequestData(f"{where}: {term} must be a string or null")
            continue
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, dict):
            raise BadRequestData(
                f"{where}: the definition of term {term!r} must be a string (an IRI), an "
                f"object or null, not {_json_type(value)}"
            )
        for member, allowed in _TERM_DEFINITION_MEMBERS.items():
            if member in value and not isinstance(value[member], allowed):
                raise BadRequestData(
                    f"{where}: in the definition of term {term!r}, {member} cannot be "
                    f"{_json_type(value[member])}"
                )


# --- a processed context -------------------------------------------------------------


def _user_entries(source: Any) -> list[Any]:
    if source is None:
        return []
    if isinstance(source, dict) and "@context" in source:
        source = source["@context"]
        if source is None:
            return []
    entries = list(source) if isinstance(source, list) else [source]
    # The response's core context is ours: an earlier core version would be redundant.
    return [e for e in entries if not (isinstance(e, str) and is_core_context_url(e))]


class Context:
    """A processed @context: expands and compacts names."""

    def __init__(
        self,
        source: str | list[Any] | dict[str, Any] | None,
        terms: dict[str, str],
        prefixes: dict[str, str],
        vocab: str,
        user_terms: Iterable[str] = (),
        urls: tuple[str, ...] = (),
    ) -> None:
        self.source = source
        self.urls = urls
        """Remote and bundled context URLs this context was built from."""
        self._terms = terms
        self._prefixes = sorted(prefixes.items())
        self._prefix_map = prefixes
        self._vocab = vocab
        self._entries = _user_entries(source)
        user = frozenset(user_terms)
        # Several terms may map to one IRI: the client's own name first, then the shortest.
        by_iri: dict[str, list[str]] = {}
        for term, iri in terms.items():
            by_iri.setdefault(iri, []).append(term)
        self._reverse = {
            iri: min(names, key=lambda t: (t not in user, len(t), t))
            for iri, names in by_iri.items()
        }
        self._expanded: dict[str, str] = {}
        self._compacted: dict[str, str] = {}

    @property
    def vocab(self) -> str:
        """The @vocab unknown terms expand against."""
        return self._vocab

    def expand(self, term: str) -> str:
        """The IRI of an attribute, sub-attribute or entity type name."""
        try:
            return self._expanded[term]
        except KeyError:
            pass
        iri = self._expand(term)
        if len(self._expanded) >= _MEMO_LIMIT:
            self._expanded.clear()
        self._expanded[term] = iri
        return iri

    def _expand(self, term: str) -> str:
        iri = self._terms.get(term)
        if iri is not None:
            return iri
        if term.startswith("@"):
            return term
        prefix, sep, suffix = term.partition(":")
        if sep:
            if prefix == "_" or suffix.startswith("//"):
                return term
            base = self._prefix_map.get(prefix)
            if base is not None:
                return base + suffix
            if _SCHEME.fullmatch(prefix):
                return term
        return self._vocab + term

    def compact(self, iri: str) -> str:
        """The shortest name that expands back to ``iri`` under this context."""
        try:
            return self._compacted[iri]
        except KeyError:
            pass
        name = self._compact(iri)
        if len(self._compacted) >= _MEMO_LIMIT:
            self._compacted.clear()
        self._compacted[iri] = name
        return name

    def _compact(self, iri: str) -> str:
        term = self._reverse.get(iri)
        if term is not None:
            return term
        vocab = self._vocab
        if len(iri) > len(vocab) and iri.startswith(vocab):
            suffix = iri[len(vocab) :]
            if self._expand(suffix) == iri:
                return suffix
        best: str | None = None
        for prefix, base in self._prefixes:
            if len(iri) > len(base) and iri.startswith(base):
                candidate = prefix + ":" + iri[len(base) :]
                if (
                    best is None or (len(candidate), candidate) < (len(best), best)
                ) and self._expand(candidate) == iri:
                    best = candidate
        return iri if best is None else best

    def expand_vocab(self, value: str) -> str:
        """The IRI of a VocabProperty value or an ``@type: @vocab`` value."""
        return self.expand(value)

    def compact_vocab(self, iri: str) -> str:
        """The compacted form of a VocabProperty value or an ``@type: @vocab`` value."""
        return self.compact(iri)

    def document(self) -> list[Any] | dict[str, Any] | str:
        """The value of a response's ``@context``: the user's contexts, then the core one."""
        if not self._entries:
            return CORE_CONTEXT_URL
        return [*self._entries, CORE_CONTEXT_URL]

    def link_header(self) -> str | None:
        """A ``Link`` header for an ``application/json`` response, when one URL can say it."""
        if not self._entries:
            url = CORE_CONTEXT_URL
        elif len(self._entries) == 1 and isinstance(self._entries[0], str):
            url = self._entries[0]
        else:
            return None
        return f'<{url}>; rel="{JSONLD_CONTEXT_REL}"; type="application/ld+json"'

    def __repr__(self) -> str:
        return f"Context({self.document()!r})"


def _build(
    source: Any, locals_: list[tuple[dict[str, Any], str, str | None] | None], urls: tuple[str, ...]
) -> Context:
    """Merge the processed user contexts with the core context (whose terms win)."""
    user = _Builder()
    for local in locals_:
        if local is None:
            user.reset()
            continue
        obj, where, origin = local
        try:
            user.apply(obj, where)
        except BadRequestData as exc:
            if origin is None:
                raise
            raise LdContextNotAvailable(
                f"The @context at {origin} is not valid: {exc.detail}"
            ) from exc
    core = _core_builder()
    vocab = user.vocab if user.vocab is not None else DEFAULT_CONTEXT_VOCAB
    raw = {**user.iris, **core.iris}

    def owner(term: str) -> _Builder:
        return core if term in core.iris else user

    resolved: dict[str, str] = {}
    visiting: set[str] = set()

    def resolve(term: str) -> str:
        done = resolved.get(term)
        if done is not None:
            return done
        iri = raw[term]
        kind = owner(term).pending.get(term)
        if kind is not None and term not in visiting:
            visiting.add(term)
            if kind == "vocab":
                iri = resolve(iri) if iri in raw and iri != term else vocab + iri
            else:
                prefix, _, suffix = iri.partition(":")
                if prefix != term and prefix in raw and is_prefix(prefix):
                    iri = resolve(prefix) + suffix
            visiting.discard(term)
        resolved[term] = iri
        return iri

    def is_prefix(term: str) -> bool:
        builder = owner(term)
        flag = builder.prefix_flag.get(term)
        if flag is not None:
            return flag
        return (
            term in builder.simple
            and ":" not in term
            and "/" not in term
            and resolve(term).endswith(_GEN_DELIMS)
        )

    terms = {term: resolve(term) for term in raw}
    prefixes = {t: terms[t] for t in raw if not terms[t].startswith("@") and is_prefix(t)}
    # A user term the core context redefined is not the client's name for the core IRI.
    user_terms = [t for t, iri in user.iris.items() if core.iris.get(t, iri) == iri]
    return Context(source, terms, prefixes, vocab, user_terms, urls)


# --- the resolver --------------------------------------------------------------------

Fetch = Callable[[str], Awaitable[Any]]
LocalLookup = Callable[[str], Awaitable[dict[str, Any] | None]]
_Local = tuple[dict[str, Any], str, str | None]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Entry:
    """A context document the resolver holds, with its usage figures."""

    url: str
    document: Any
    created_at: str = field(default_factory=_now)
    last_usage: str = field(default_factory=_now)
    hits: int = 0


class _FetchError(Exception):
    """A remote context could not be fetched; the message says why."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "no answer in time"
    text = str(exc)
    if isinstance(exc, _FetchError):
        return text
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _source_key(source: Any) -> str | None:
    if isinstance(source, str):
        return "u" + source
    try:
        return "j" + orjson.dumps(source, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None  # not JSON: processing will say what is wrong with it


class ContextResolver:
    """Turns a request's @context into a ``Context``: fetches, caches, processes.

    Bundled contexts (core, Smart Data Models) never touch the network; contexts hosted
    by this broker are looked up through ``local``; other URLs are fetched once and
    cached. Processed contexts are kept in an LRU cache keyed by the @context given.
    """

    def __init__(
        self,
        *,
        fetch: Fetch | None = None,
        timeout: float = 5.0,
        cache_size: int = 256,
        local: LocalLookup | None = None,
    ) -> None:
        self._fetch: Fetch = fetch if fetch is not None else self._http_fetch
        self._timeout = timeout
        self._cache_size = max(1, cache_size)
        self._local = local
        self._core = _build(None, [], ())
        self._contexts: OrderedDict[str, Context] = OrderedDict()
        self._docs: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    @property
    def core(self) -> Context:
        """The core-only context."""
        return self._core

    async def resolve(self, source: Any) -> Context:
        """The processed context for ``source``: None, a URL, a list, or an object."""
        if source is None:
            return self._core
        key = _source_key(source)
        if key is not None:
            context = self._contexts.get(key)
            if context is not None:
                self._contexts.move_to_end(key)
                for url in context.urls:
                    self._touch(url)
                return context
        top = source
        if isinstance(source, dict) and "@context" in source:
            top = source["@context"]
        locals_: list[_Local | None] = []
        used: dict[str, None] = {}
        await self._flatten(top, None, (), "@context", locals_, used)
        context = _build(source, locals_, tuple(used))
        if key is not None:
            self._contexts[key] = context
            while len(self._contexts) > self._cache_size:
                self._contexts.popitem(last=False)
        return context

    def cached(self) -> list[dict[str, Any]]:
        """The context URLs held, for ``GET /jsonldContexts`` (GS CIM 009, 5.13.3)."""
        return [
            {
                "id": e.url,
                "url": e.url,
                "kind": "Cached",
                "createdAt": e.created_at,
                "lastUsage": e.last_usage,
                "numberOfHits": e.hits,
            }
            for e in self._docs.values()
        ]

    def forget(self, url: str) -> bool:
        """Drop a cached URL and every processed context built from it; True if it was held."""
        held = self._docs.pop(url, None) is not None
        hosted = hosted_context_id(url)
        for key in [k for k, c in self._contexts.items() if self._depends(c, url, hosted)]:
            del self._contexts[key]
        return held

    @staticmethod
    def _depends(context: Context, url: str, hosted: str | None) -> bool:
        if url in context.urls:
            return True
        return hosted is not None and any(hosted_context_id(u) == hosted for u in context.urls)

    # -- flattening: URLs replaced by the local context objects they stand for ----------

    async def _flatten(
        self,
        value: Any,
        base: str | None,
        chain: tuple[str, ...],
        where: str,
        out: list[_Local | None],
        used: dict[str, None],
    ) -> None:
        if value is None:
            out.append(None)
        elif isinstance(value, str):
            await self._flatten_url(value, base, chain, where, out, used)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, list):
                    raise BadRequestData(f"{where}[{i}]: an array cannot contain an array")
                await self._flatten(item, base, chain, f"{where}[{i}]", out, used)
        elif isinstance(value, dict):
            if "@import" in value:
                value = await self._import(value, base, chain, where, used)
            _check_local(value, where)
            out.append((value, where, chain[-1] if chain else None))
        else:
            raise BadRequestData(
                f"{where} must be a URL, an object or an array of them, not {_json_type(value)}"
            )

    async def _flatten_url(
        self,
        ref: str,
        base: str | None,
        chain: tuple[str, ...],
        where: str,
        out: list[_Local | None],
        used: dict[str, None],
    ) -> None:
        url = self._absolute(ref, base, where)
        if url in chain:
            raise BadRequestData(f"{where}: {url} includes itself")
        if len(chain) >= MAX_NESTING:
            raise BadRequestData(f"{where}: remote contexts nested more than {MAX_NESTING} deep")
        if url not in used and len(used) >= MAX_REMOTE_CONTEXTS:
            raise BadRequestData(f"{where}: more than {MAX_REMOTE_CONTEXTS} remote contexts")
        document = await self._load(url, used)
        try:
            await self._flatten(document["@context"], url, (*chain, url), url, out, used)
        except BadRequestData as exc:
            self._docs.pop(url, None)  # an invalid document is not worth keeping
            raise LdContextNotAvailable(
                f"The @context at {url} is not valid: {exc.detail}"
            ) from exc

    async def _import(
        self,
        value: dict[str, Any],
        base: str | None,
        chain: tuple[str, ...],
        where: str,
        used: dict[str, None],
    ) -> dict[str, Any]:
        ref = value["@import"]
        if not isinstance(ref, str):
            raise BadRequestData(f"{where}: @import must be a URL, not {_json_type(ref)}")
        url = self._absolute(ref, base, where)
        document = await self._load(url, used)
        imported = document["@context"]
        if not isinstance(imported, dict):
            raise LdContextNotAvailable(
                f"The @context at {url}, imported by {where}, is not a single object"
            )
        # The importing context's own definitions win over the imported ones.
        merged = {k: v for k, v in imported.items() if k != "@import"}
        merged.update((k, v) for k, v in value.items() if k != "@import")
        return merged

    @staticmethod
    def _absolute(ref: str, base: str | None, where: str) -> str:
        url = urljoin(base, ref) if base is not None else ref
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadRequestData(f"{where}: {ref!r} is not an http or https URL of a @context")
        return url

    # -- loading documents -------------------------------------------------------------

    def _touch(self, url: str) -> None:
        entry = self._docs.get(url)
        if entry is not None:
            entry.hits += 1
            entry.last_usage = _now()

    async def _load(self, url: str, used: dict[str, None]) -> dict[str, Any]:
        """The context document at ``url``, from the bundle, this broker, the cache or the web."""
        first_use = url not in used
        used[url] = None
        hosted = hosted_context_id(url)
        if hosted is not None:
            return await self._load_hosted(url, hosted)
        entry = self._docs.get(url)
        if entry is None:
            name = bundled_file(url)
            if name is not None:
                entry = _Entry(url, load_bundled(name))
                self._remember(entry)
            else:
                entry = await self._fetch_once(url)
        else:
            self._docs.move_to_end(url)
        if first_use:
            self._touch(url)
        document: dict[str, Any] = entry.document
        return document

    async def _load_hosted(self, url: str, hosted: str) -> dict[str, Any]:
        if self._local is None:
            raise LdContextNotAvailable(f"@context {url}: this broker hosts no contexts")
        try:
            document = await self._local(hosted)
        except NgsiError:
            raise
        except Exception as exc:
            raise LdContextNotAvailable(
                f"@context {url} could not be read: {_reason(exc)}"
            ) from exc
        if document is None:
            raise LdContextNotAvailable(f"@context {url} is not hosted by this broker")
        return self._checked(url, document)

    async def _fetch_once(self, url: str) -> _Entry:
        # Concurrent requests for one URL share one fetch; shield() keeps a cancelled
        # request from cancelling the fetch the others wait for.
        future = self._inflight.get(url)
        if future is None:
            future = asyncio.ensure_future(self._fetch_entry(url))
            self._inflight[url] = future
            future.add_done_callback(lambda f: self._done(url, f))
        entry: _Entry = await asyncio.shield(future)
        return entry

    def _done(self, url: str, future: asyncio.Future[Any]) -> None:
        self._inflight.pop(url, None)
        if not future.cancelled():
            future.exception()  # retrieved here so that an unawaited failure is not logged

    async def _fetch_entry(self, url: str) -> _Entry:
        try:
            async with asyncio.timeout(self._timeout):
                document = await self._fetch(url)
        except NgsiError:
            raise
        except Exception as exc:
            raise LdContextNotAvailable(
                f"@context {url} could not be fetched: {_reason(exc)}"
            ) from exc
        entry = _Entry(url, self._checked(url, document))
        self._remember(entry)
        return entry

    @staticmethod
    def _checked(url: str, document: Any) -> dict[str, Any]:
        if not isinstance(document, dict):
            why = f"it is {_json_type(document)}, not an object"
        elif "@context" not in document:
            why = "it has no @context member"
        else:
            return document
        raise LdContextNotAvailable(f"{url} is not a JSON-LD context document: {why}")

    def _remember(self, entry: _Entry) -> None:
        self._docs[entry.url] = entry
        while len(self._docs) > self._cache_size:
            self._docs.popitem(last=False)

    async def _http_fetch(self, url: str) -> Any:
        """GET a context document (redirects followed, size capped)."""
        headers = {"Accept": "application/ld+json, application/json;q=0.9"}
        async with (
            httpx.AsyncClient(timeout=self._timeout, follow_redirects=True) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code >= 400:
                raise _FetchError(f"HTTP status {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_CONTEXT_BYTES:
                    raise _FetchError(f"the document is larger than {MAX_CONTEXT_BYTES} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _FetchError("the answer is not JSON") from exc
