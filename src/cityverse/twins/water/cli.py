"""``cityverse import epanet FILE.inp``: an EPANET network into the twin.

cityverse import epanet berkane.inp --crs EPSG:26191
cityverse import epanet L-TOWN.inp --anchor -2.93,35.17 --name ltown
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from cityverse.core.errors import NgsiError
from cityverse.settings import Settings
from cityverse.store.base import open_store


def register(commands: Any) -> None:
    """Add the ``epanet`` kind to ``cityverse import``."""
    parser = commands.add_parser(
        "epanet",
        help="an EPANET .inp network as Smart Data Models water entities",
        description="Import an EPANET network: junctions, tanks, reservoirs, pipes, pumps, "
        "valves, patterns and curves become NGSI-LD entities placed on the map.",
    )
    parser.add_argument("file", help="the .inp file")
    place = parser.add_mutually_exclusive_group(required=True)
    place.add_argument("--crs", help="CRS of the file's coordinates, e.g. EPSG:26191")
    place.add_argument("--anchor", help="lon,lat where the local point --offset (default 0,0) lies")
    parser.add_argument("--offset", help="x,y of the local point placed at --anchor")
    parser.add_argument("--name", help="network name used in entity ids (default: file name)")
    parser.add_argument("--store", help="store URL (default: the settings' store)")
    parser.add_argument("--tenant", default="", help="NGSI-LD tenant (default: the default)")
    parser.add_argument(
        "--zones",
        choices=["auto", "tags"],
        default="auto",
        help="auto: derive zones when the file tags none; tags: the file's tags only",
    )
    parser.add_argument("--no-sensors", action="store_true", help="ignore sensor comments")
    parser.add_argument("--replace", action="store_true", help="overwrite a network of that name")
    parser.set_defaults(run=run)


def _pair(text: str, what: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{what} must be two numbers separated by a comma, not {text!r}") from None
    return a, b


def run(args: argparse.Namespace) -> int:
    """Import the file; 0 on success, 1 when the import failed, 2 on bad arguments."""
    from cityverse.twins.water.model import InpError, Placement, check_network_name

    path = Path(args.file)
    name = args.name or path.stem.replace(" ", "-")
    try:
        check_network_name(name)
        if args.crs:
            placement = Placement.from_crs(args.crs)
        else:
            offset = _pair(args.offset, "--offset") if args.offset else (0.0, 0.0)
            placement = Placement.anchored(*_pair(args.anchor, "--anchor"), offset)
        settings = Settings.from_env(store=args.store)
    except ValueError as exc:
        print(f"cityverse import epanet: {exc}", file=sys.stderr)
        return 2
    if not path.is_file():
        print(f"cityverse import epanet: no such file: {path}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_import(settings.store_url, args, path, name, placement))
    except InpError as exc:
        print(f"cityverse import epanet: {exc}", file=sys.stderr)
        return 1
    except NgsiError as exc:
        print(f"cityverse import epanet: {exc.detail}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"cityverse import epanet: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items()))
    print(f"imported network {report.network!r}: {counts}")
    if report.zones:
        zones = ", ".join(f"{z} ({n} junctions)" for z, n in sorted(report.zones.items()))
        print(f"zones: {zones}")
    for part in report.disconnected:
        shown = ", ".join(part[:10]) + (" ..." if len(part) > 10 else "")
        print(f"warning: {len(part)} junction(s) reach no tank or reservoir: {shown}")
    return 0


async def _import(url: str, args: argparse.Namespace, path: Path, name: str, placement: Any) -> Any:
    from cityverse.twins.water.twin import import_network

    store = open_store(url)
    await store.open()
    try:
        return await import_network(
            store,
            args.tenant,
            path,
            name,
            placement,
            zones=args.zones,
            sensors=not args.no_sensors,
            replace=args.replace,
        )
    finally:
        await store.close()


def register_export(commands: Any) -> None:
    """Add the ``epanet`` kind to a ``cityverse export`` command."""
    parser = commands.add_parser(
        "epanet", help="a water network of the twin as an EPANET .inp file"
    )
    parser.add_argument("name", help="the network's name")
    parser.add_argument("--out", help="file to write (default: NAME.inp; - for stdout)")
    parser.add_argument("--units", help="flow units of the file (default: the network's own)")
    parser.add_argument("--store", help="store URL (default: the settings' store)")
    parser.add_argument("--tenant", default="", help="NGSI-LD tenant (default: the default)")
    parser.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Write the network as .inp; 0 on success, 1 if there is no such network."""
    try:
        settings = Settings.from_env(store=args.store)
        text = asyncio.run(_export(settings.store_url, args.tenant, args.name, args.units))
    except NgsiError as exc:
        print(f"cityverse export epanet: {exc.detail}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"cityverse export epanet: {exc}", file=sys.stderr)
        return 2
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out or f"{args.name}.inp").write_text(text)
    return 0


async def _export(url: str, tenant: str, name: str, units: str | None) -> str:
    from cityverse.twins.water.model import inp_text, model_from_entities
    from cityverse.twins.water.twin import load_network

    store = open_store(url)
    await store.open()
    try:
        bodies = await load_network(store, tenant, name)
    finally:
        await store.close()
    wn = model_from_entities([b for b in bodies if b["type"] != "Device"])
    return inp_text(wn, units)
