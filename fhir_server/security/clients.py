"""Registered backend-service clients, each bound to a consortium member.

Clients are registered out of band — a JSON file edited by ``fhir-server clients add`` —
never through the open API. Each entry binds a ``client_id`` to an ``Organization`` (and
optionally a ``PractitionerRole``), the most it may ask for (``scopes``), whether it is a
platform administrator, and the public keys (a JWKS) its client assertions are signed with.
The file is re-read when it changes, so registrations take effect without a restart.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .scopes import ScopeError, parse_scope

ALGORITHMS = ("RS384", "ES384")


class ClientFileError(ValueError):
    """The clients file or a registration in it is malformed."""


@dataclass(frozen=True)
class Client:
    client_id: str
    organization: str
    jwks: dict
    scopes: tuple[str, ...] = ("system/*.cruds",)
    practitioner_role: str | None = None
    admin: bool = False
    name: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        out = {"client_id": self.client_id, "organization": self.organization, "scopes": list(self.scopes),
               "admin": self.admin, "jwks": self.jwks}
        if self.practitioner_role:
            out["practitioner_role"] = self.practitioner_role
        if self.name:
            out["name"] = self.name
        return out


def _reference(value: object, resource_type: str, what: str) -> str:
    if not isinstance(value, str) or not value.startswith(resource_type + "/") or value.count("/") != 1 \
            or not value.split("/")[1]:
        raise ClientFileError(f"{what} must be a reference like '{resource_type}/id', not {value!r}")
    return value


def check_jwks(jwks: object) -> dict:
    """A JWKS of public RSA/EC keys; private key material is refused (it must never be shared)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ClientFileError("jwks must be a JSON Web Key Set with at least one key")
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC"):
            raise ClientFileError("every key in the JWKS must be an RSA or EC key")
        if "d" in key:
            raise ClientFileError("the JWKS holds a private key; register the public key only")
    from joserfc.jwk import KeySet

    try:
        KeySet.import_key_set(jwks)
    except Exception as exc:  # joserfc raises several types for malformed keys
        raise ClientFileError(f"the JWKS cannot be read: {exc}") from None
    return jwks


def client_from_json(entry: object) -> Client:
    if not isinstance(entry, dict) or not isinstance(entry.get("client_id"), str) or not entry["client_id"]:
        raise ClientFileError("each client needs a client_id")
    cid = entry["client_id"]
    scopes = entry.get("scopes", ["system/*.cruds"])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ClientFileError(f"{cid}: scopes must be a list of strings")
    for scope in scopes:
        try:
            parse_scope(scope)
        except ScopeError as exc:
            raise ClientFileError(f"{cid}: {exc}") from None
    role = entry.get("practitioner_role")
    return Client(
        client_id=cid,
        organization=_reference(entry.get("organization"), "Organization", f"{cid}: organization"),
        jwks=check_jwks(entry.get("jwks")),
        scopes=tuple(scopes),
        practitioner_role=_reference(role, "PractitionerRole", f"{cid}: practitioner_role") if role else None,
        admin=bool(entry.get("admin", False)),
        name=str(entry.get("name", "")),
    )


def read_clients(path: Path) -> dict[str, Client]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClientFileError(f"{path}: {exc}") from None
    entries = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ClientFileError(f"{path}: expected {{\"clients\": [...]}}")
    clients = {}
    for entry in entries:
        client = client_from_json(entry)
        if client.client_id in clients:
            raise ClientFileError(f"{path}: client_id '{client.client_id}' is registered twice")
        clients[client.client_id] = client
    return clients


def write_clients(path: Path, clients: dict[str, Client]) -> None:
    """Replace the file atomically (a reader never sees half a file); owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    payload = json.dumps({"clients": [c.to_json() for c in clients.values()]}, indent=2, ensure_ascii=False)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload + "\n")
    os.replace(temporary, path)


class ClientRegistry:
    """The clients file, re-read when its modification time changes: looked at no more than once per
    ``recheck_seconds`` (every request checks that its client is still registered)."""

    def __init__(self, path: Path, recheck_seconds: float = 1.0):
        self.path = Path(path)
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = float("-inf")
        self._clients: dict[str, Client] = {}

    def _current(self) -> dict[str, Client]:
        now = time.monotonic()
        return self._clients if now - self._checked < self.recheck_seconds else self._look(now)

    def _look(self, now: float) -> dict[str, Client]:
        """The clients after a look at the file (re-read when it changed)."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._clients = read_clients(self.path) if stamp else {}
                self._stamp = stamp
            self._checked = now
            return self._clients

    def get(self, client_id: str) -> Client | None:
        # every request asks: between looks at the file, the dict at hand answers without a call more
        now = time.monotonic()
        return (self._clients if now - self._checked < self.recheck_seconds else self._look(now)).get(client_id)

    def all(self) -> list[Client]:
        return list(self._current().values())


# ---- the ``fhir-server clients`` command ----------------------------------------------------------

def _clients_path(args: argparse.Namespace) -> Path:
    if args.clients_file:
        return Path(args.clients_file)
    from ..config import Settings

    return Settings.from_env(data_dir=args.data_dir).clients_path


def _add(args: argparse.Namespace) -> int:
    path = _clients_path(args)
    clients = read_clients(path)
    if args.client_id in clients and not args.replace:
        print(f"client '{args.client_id}' is already registered in {path} (use --replace)")
        return 1
    jwks = json.loads(Path(args.jwks).read_text(encoding="utf-8"))
    if isinstance(jwks, dict) and "kty" in jwks:  # a single JWK: wrap it
        jwks = {"keys": [jwks]}
    entry = {"client_id": args.client_id, "organization": args.organization, "jwks": jwks,
             "scopes": args.scope or ["system/*.cruds"], "admin": args.admin, "name": args.name or ""}
    if args.practitioner_role:
        entry["practitioner_role"] = args.practitioner_role
    try:
        clients[args.client_id] = client_from_json(entry)
    except ClientFileError as exc:
        print(f"not registered: {exc}")
        return 1
    write_clients(path, clients)
    print(f"registered client '{args.client_id}' for {args.organization} in {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for client in read_clients(_clients_path(args)).values():
        flags = " admin" if client.admin else ""
        print(f"{client.client_id}\t{client.organization}\t{' '.join(client.scopes)}{flags}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    path = _clients_path(args)
    clients = read_clients(path)
    if clients.pop(args.client_id, None) is None:
        print(f"client '{args.client_id}' is not registered in {path}")
        return 1
    write_clients(path, clients)
    print(f"removed client '{args.client_id}'")
    return 0


def add_parser(subparsers) -> None:
    clients = subparsers.add_parser("clients", help="register backend-service clients (SMART client_credentials)")
    commands = clients.add_subparsers(dest="clients_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--clients-file", default=None,
                            help="the clients file (default: env FHIR_AUTH_CLIENTS, else <data-dir>/clients.json)")
        parser.add_argument("--data-dir", default=None, help="data directory (env FHIR_DATA_DIR)")

    add = commands.add_parser("add", help="register (or with --replace, re-register) a client")
    add.add_argument("client_id")
    add.add_argument("--organization", required=True, help="the member it belongs to: Organization/<id>")
    add.add_argument("--jwks", required=True, help="file holding the client's public JWKS (or one public JWK)")
    add.add_argument("--scope", action="append", help="a scope it may request (repeatable; default system/*.cruds)")
    add.add_argument("--practitioner-role", default=None, help="PractitionerRole/<id> the client acts as")
    add.add_argument("--admin", action="store_true", help="platform administrator: sees all, reads AuditEvents")
    add.add_argument("--name", default=None)
    add.add_argument("--replace", action="store_true")
    common(add)
    add.set_defaults(func=_add)

    listing = commands.add_parser("list", help="list registered clients")
    common(listing)
    listing.set_defaults(func=_list)

    remove = commands.add_parser("remove", help="remove a client")
    remove.add_argument("client_id")
    common(remove)
    remove.set_defaults(func=_remove)
