"""The ``cityverse`` command: ``serve``, ``demo`` and ``import KIND FILE``.

Every serve flag has a ``CITYVERSE_*`` environment variable; flags win. Each kind of
import lives with the code that understands it and adds its own subcommand through a
``register(commands)`` function (see ``IMPORTERS``); the subcommand sets ``run``, a
function from the parsed arguments to the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from cityverse import __version__
from cityverse.broker.retention import parse_policy
from cityverse.core.context import ContextResolver
from cityverse.demo import command as demo_command
from cityverse.security import cli as security_cli
from cityverse.security.guard import Guard
from cityverse.settings import ENV_PREFIX, Settings
from cityverse.store.base import open_store

IMPORTERS: tuple[str, ...] = (
    "cityverse.twins.water.cli",
    "cityverse.ingest.files",
    "cityverse.ingest.history",
)
"""Modules that add a ``cityverse import`` kind, each through ``register(commands)``."""
EXPORTERS: tuple[str, ...] = ("cityverse.twins.water.cli",)
"""Modules that add a ``cityverse export`` kind, each through ``register_export(commands)``."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cityverse", description="CityVerse: the city's digital twin and NGSI-LD broker."
    )
    parser.add_argument("--version", action="version", version=f"cityverse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the NGSI-LD API")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 1026)")
    serve.add_argument(
        "--store",
        help="store URL: sqlite:///path/file.db or postgresql://user@host/db "
        "(default: a SQLite file in the data directory)",
    )
    serve.add_argument("--workers", type=int, help="server processes (default 1)")
    serve.add_argument("--data-dir", help="data directory (default ./data)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--insecure-open",
        action="store_true",
        help="serve without identities: everyone may do everything (local development only)",
    )
    serve.add_argument("--policy-file", help="JSON file of the tenants' roles and personal data")
    serve.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    demo_command.register(commands)
    security_cli.register(commands)
    importer = commands.add_parser("import", help="import data files into the twin")
    kinds = importer.add_subparsers(dest="kind", required=True, metavar="KIND")
    for module in IMPORTERS:
        importlib.import_module(module).register(kinds)
    exporter = commands.add_parser("export", help="write the twin's data out as files")
    export_kinds = exporter.add_subparsers(dest="kind", required=True, metavar="KIND")
    for module in EXPORTERS:
        importlib.import_module(module).register_export(export_kinds)
    return parser


def serve(args: argparse.Namespace) -> int:
    """Run the HTTP server until interrupted."""
    import uvicorn

    from cityverse.api.server import GatheringHttpToolsProtocol

    try:
        settings = Settings.from_env(
            host=args.host,
            port=args.port,
            store=args.store,
            workers=args.workers,
            data_dir=args.data_dir,
            log_level=args.log_level,
            auth="off" if args.insecure_open else None,
            policy_file=args.policy_file,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
        # A bad retention policy is refused here in one line, not in a worker's traceback.
        parse_policy(settings.temporal_retention, ContextResolver().core)
        Guard.from_settings(settings, open_store(settings.store_url), b"")
        if bool(settings.tls_cert) != bool(settings.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
    except ValueError as exc:
        print(f"cityverse: {exc}", file=sys.stderr)
        return 2
    problem = _check_store_url(settings.store_url)
    if problem:
        print(f"cityverse: {problem}", file=sys.stderr)
        return 2
    if settings.workers < 1:
        print("cityverse: --workers must be at least 1", file=sys.stderr)
        return 2
    # Worker processes rebuild the settings from the environment: hand the flags down.
    for name in (
        "store",
        "data_dir",
        "host",
        "port",
        "workers",
        "log_level",
        "auth",
        "policy_file",
    ):
        os.environ[ENV_PREFIX + name.upper()] = str(getattr(settings, name))
    scheme = "https" if settings.tls_cert else "http"
    print(
        f"CityVerse {__version__}: NGSI-LD API on {scheme}://{settings.host}:{settings.port}"
        f"/ngsi-ld/v1 (store {settings.store_url}, {settings.workers} worker(s))",
        file=sys.stderr,
    )
    if settings.auth == "off":
        print(
            "WARNING: SECURITY IS OFF (--insecure-open / CITYVERSE_AUTH=off): every caller may"
            " read, change and delete everything. Never serve a city's data like this.",
            file=sys.stderr,
        )
    else:
        print(
            "Security is on: callers need an API key ('cityverse keys create --role admin')"
            " or a bearer token, unless a tenant's policy opens something to the public.",
            file=sys.stderr,
        )
    uvicorn.run(
        "cityverse.api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        http=GatheringHttpToolsProtocol,
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
    )
    return 0


def _check_store_url(url: str) -> str | None:
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres"):
        return f"unknown store URL {url!r}: use sqlite:///path/file.db or postgresql://user@host/db"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cityverse`` command."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
