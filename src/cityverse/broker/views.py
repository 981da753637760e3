"""How a response shows entities: representation, system attributes, language, projection.

``parse_view`` reads ``options``, ``format``, ``attrs``, ``pick``, ``omit``, ``lang`` and
``geometryProperty`` (GS CIM 009 5.5.? and 4.5); ``render`` applies the view to a stored
entity with the request's @context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cityverse.core.context import Context
from cityverse.core.entity import render_entity, render_geojson
from cityverse.core.errors import BadRequestData
from cityverse.core.model import LOCATION, Entity
from cityverse.core.query import parse_attr_list

FORMATS = {
    "normalized": "normalized",
    "concise": "concise",
    "keyValues": "keyValues",
    "simplified": "keyValues",
}
OPTIONS_KNOWN = frozenset(
    {
        *FORMATS,
        "sysAttrs",
        "noOverwrite",
        "update",
        "replace",
        "temporalValues",
        "aggregatedValues",
        "audit",
    }
)


@dataclass(frozen=True, slots=True)
class View:
    """How to render entities."""

    fmt: str = "normalized"
    sys_attrs: bool = False
    lang: str | None = None
    attrs: frozenset[str] | None = None
    omit: frozenset[str] | None = None
    keep_id: bool = True
    keep_type: bool = True
    geoproperty: str = LOCATION


def parse_options(raw: str | None) -> set[str]:
    """The set of ``options`` values, each checked against the known ones."""
    if not raw:
        return set()
    options = {o.strip() for o in raw.split(",") if o.strip()}
    unknown = options - OPTIONS_KNOWN
    if unknown:
        known = ", ".join(sorted(OPTIONS_KNOWN))
        raise BadRequestData(f"unknown option(s) {', '.join(sorted(unknown))}; known: {known}")
    return options


DEFAULT_VIEW = View()


def parse_view(ctx: Context, params: Mapping[str, Any]) -> View:
    """The view asked for by a request's parameters."""
    if not params:
        return DEFAULT_VIEW
    options = parse_options(params.get("options"))
    formats = {FORMATS[o] for o in options if o in FORMATS}
    if params.get("format"):
        if params["format"] not in FORMATS:
            raise BadRequestData(f"unknown format {params['format']!r}")
        formats.add(FORMATS[params["format"]])
    if len(formats) > 1:
        raise BadRequestData("ask for one representation only: " + ", ".join(sorted(formats)))
    fmt = formats.pop() if formats else "normalized"
    keep_id = keep_type = True
    attrs: set[str] | None = None
    for key in ("attrs", "pick"):
        if params.get(key):
            names = (
                parse_attr_list(str(params[key]), ctx.expand)
                if key == "attrs"
                else _members(ctx, str(params[key]))
            )
            if key == "pick":
                keep_id = "id" in names
                keep_type = "type" in names
                names = [n for n in names if n not in ("id", "type")]
            attrs = set(names) if attrs is None else attrs & set(names)
    omit: set[str] | None = None
    if params.get("omit"):
        names = _members(ctx, str(params["omit"]))
        keep_id = keep_id and "id" not in names
        keep_type = keep_type and "type" not in names
        omit = {n for n in names if n not in ("id", "type")}
    lang = params.get("lang")
    if lang is not None and (not isinstance(lang, str) or not lang):
        raise BadRequestData("lang must be a language tag, a list of them, or *")
    geo = params.get("geometryProperty")
    return View(
        fmt=fmt,
        sys_attrs="sysAttrs" in options,
        lang=lang,
        attrs=frozenset(attrs) if attrs is not None else None,
        omit=frozenset(omit) if omit else None,
        keep_id=keep_id,
        keep_type=keep_type,
        geoproperty=ctx.expand(geo) if geo else LOCATION,
    )


def _members(ctx: Context, raw: str) -> list[str]:
    items = [item.strip() for item in raw.split(",")]
    if any(not item for item in items):
        raise BadRequestData(f"empty name in {raw!r}")
    plain = [i for i in items if i not in ("id", "type")]
    expanded = parse_attr_list(",".join(plain), ctx.expand) if plain else []
    return [i for i in items if i in ("id", "type")] + expanded


def render(entity: Entity, ctx: Context, view: View, *, geojson: bool = False) -> dict[str, Any]:
    """One entity as the view shows it (no @context member)."""
    if geojson:
        return render_geojson(
            entity,
            ctx,
            geoproperty=view.geoproperty,
            fmt=view.fmt,
            sys_attrs=view.sys_attrs,
            lang=view.lang,
            attrs=view.attrs,
            omit=view.omit,
        )
    return render_entity(
        entity,
        ctx,
        fmt=view.fmt,
        sys_attrs=view.sys_attrs,
        lang=view.lang,
        attrs=view.attrs,
        omit=view.omit,
        keep_id=view.keep_id,
        keep_type=view.keep_type,
    )
