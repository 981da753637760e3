"""``cityverse keys``, ``cityverse audit verify`` and ``cityverse status``.

    cityverse keys create --role admin [--tenant T] [--name N]   # prints the key once
    cityverse keys list [--tenant T]
    cityverse keys revoke KEY_ID
    cityverse audit verify [--file PATH]                        # exit 1 when tampered
    cityverse status                                            # security, residency

They work on the store and data directory the ``CITYVERSE_*`` settings name (or
``--store``/``--data-dir``), with or without a server running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from cityverse import __version__
from cityverse.core.errors import NgsiError
from cityverse.security.audit import verify
from cityverse.security.guard import Guard
from cityverse.security.keys import KeyStore
from cityverse.security.privacy import inventory
from cityverse.security.secrets import secret_path, site_secret
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT, open_store


def register(commands: Any) -> None:
    """Add the ``keys``, ``audit`` and ``status`` commands."""
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key (printed once)")
    create.add_argument(
        "--role", required=True, help="admin, operator, analyst, developer, citizen"
    )
    create.add_argument("--tenant", default=DEFAULT_TENANT, help="tenant ('*': every tenant)")
    create.add_argument("--name", default="", help="what the key is for")
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", help="the key's id (from 'keys list')")
    revoke.set_defaults(run=_revoke)
    audit = commands.add_parser("audit", help="check the audit log")
    audit_actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = audit_actions.add_parser("verify", help="verify the audit log's hash chain")
    check.add_argument("--file", help="audit log file (default: the configured one)")
    check.set_defaults(run=_verify)
    status = commands.add_parser("status", help="security, data residency and store status")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=_status)
    for parser in (create, listing, revoke, check, status):
        parser.add_argument("--store", help="store URL (default: CITYVERSE_STORE or SQLite)")
        parser.add_argument("--data-dir", help="data directory (default ./data)")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(store=args.store, data_dir=args.data_dir)


def _with_keys(args: argparse.Namespace, action: Any) -> int:
    async def run() -> int:
        store = open_store(_settings(args).store_url)
        await store.open()
        try:
            return int(await action(KeyStore(store)))
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except NgsiError as exc:
        print(f"cityverse: {exc.detail}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"cityverse: {exc}", file=sys.stderr)
        return 2


def _create(args: argparse.Namespace) -> int:
    async def action(keys: KeyStore) -> int:
        token, record = await keys.create(args.tenant, args.role, args.name)
        print(token)
        where = record.tenant or "the default tenant"
        print(
            f"key {record.id}: role {record.role} in {where}. It is shown only now: keep it"
            " in a secret store; send it as 'Authorization: Bearer <key>'.",
            file=sys.stderr,
        )
        return 0

    return _with_keys(args, action)


def _list(args: argparse.Namespace) -> int:
    async def action(keys: KeyStore) -> int:
        for record in await keys.list(args.tenant):
            state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
            print(
                f"{record.id}  {record.tenant or '(default)':<12} {record.role:<10}"
                f" {state:<32} {record.name}"
            )
        return 0

    return _with_keys(args, action)


def _revoke(args: argparse.Namespace) -> int:
    async def action(keys: KeyStore) -> int:
        record = await keys.revoke(None, args.key_id)
        print(f"key {record.id} revoked at {record.revoked_at}")
        return 0

    return _with_keys(args, action)


def audit_path(settings: Settings) -> Path | None:
    """The audit log file the settings name (None when the log is off)."""
    if settings.audit_log == "off":
        return None
    return Path(settings.audit_log or Path(settings.data_dir) / "audit.log")


def _verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    path = Path(args.file) if args.file else audit_path(settings)
    if path is None:
        print("cityverse: the audit log is off (CITYVERSE_AUDIT_LOG=off)", file=sys.stderr)
        return 2
    try:
        result = verify(path, site_secret(settings, create=False))
    except FileNotFoundError as exc:
        print(f"cityverse: {exc.filename} does not exist", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"cityverse: {exc}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"{path}: {result.records} records, chain intact")
        return 0
    print(
        f"{path}: TAMPERED at line {result.line}: {result.problem}"
        f" ({result.records} records verified before it)"
    )
    return 1


def _status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        guard = Guard.from_settings(settings, open_store(settings.store_url), b"")
    except ValueError as exc:
        print(f"cityverse: {exc}", file=sys.stderr)
        return 2
    policy = guard.policy_file.for_tenant(DEFAULT_TENANT) if guard.policy_file else None
    audit = audit_path(settings)
    report: dict[str, Any] = {
        "version": __version__,
        "store": _redacted(settings.store_url),
        "dataDirectory": str(Path(settings.data_dir).resolve()),
        "dataResidency": settings.data_residency,
        "security": "on" if guard.enabled else "OFF",
        "identities": ["API keys"] + ([f"OIDC {settings.oidc_issuer}"] if guard.verifier else []),
        "policyFile": settings.policy_file or None,
        "auditLog": str(audit) if audit else "off",
        "siteSecret": "CITYVERSE_SECRET_KEY" if settings.secret_key else str(secret_path(settings)),
        "tls": "on" if settings.tls_cert else "off",
        "personalData": inventory(policy) if policy else "built-in inventory",
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if not guard.enabled:
        print("WARNING: security is OFF: every caller may read, change and delete everything.")
    for name, value in report.items():
        if name == "personalData" and isinstance(value, list):
            print("personalData:")
            for item in value:
                print(
                    f"  {item['type']}.{item['attribute']}: {item['purpose']}"
                    f" (kept {item['retention'] or 'until deleted'}, {item['treatment']})"
                )
            continue
        print(f"{name}: {value}")
    return 0


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url
    return url
