"""Credentials in the data dir: the admin token, named tokens with a role, the session key.

* ``admin_token``: the admin token itself (0600), generated at first start, printed by
  ``jupiter serve`` and shown by ``jupiter token`` (as Jupyter does); ``jupiter token --rotate``
  replaces it. ``JUPITER_ADMIN_TOKEN`` overrides the file.
* ``tokens.json``: named tokens (``jupiter token create --role analyst NAME``). Only the SHA-256
  of each token is stored: a token is 256 random bits, so a fast hash is enough (there is
  nothing to brute-force), and the file leaks nothing usable if it is copied.
* ``session_key``: the key that signs browser sessions (see :mod:`jupiter.service.auth`).

Every file is written atomically and 0600. :class:`CredentialStore` re-reads a file as soon
as it changes (one ``os.stat`` per file and check, comparing inode, size and mtime), so a
rotation or revocation made by the CLI, or by another server process sharing the data dir,
takes effect on the very next request.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from jupiter.private_files import (
    create_private_file,
    write_private_atomic,
    write_private_if_absent,
)

__all__ = [
    "ADMIN_NAME",
    "SESSION_KEY_FILE",
    "TOKENS_FILE",
    "TOKEN_FILE",
    "Credential",
    "CredentialStore",
    "Role",
    "TokenError",
    "TokenExistsError",
    "TokenInfo",
    "admin_token_for",
    "create_token",
    "list_tokens",
    "load_or_create_token",
    "revoke_token",
    "rotate_token",
    "token_digest",
    "token_matches",
]

TOKEN_FILE = "admin_token"  # noqa: S105 - a file name, not a secret
TOKENS_FILE = "tokens.json"
SESSION_KEY_FILE = "session_key"
_LOCK_FILE = ".tokens.lock"
#: The admin token's name, in sessions, logs and ``jupiter token list``; reserved.
ADMIN_NAME = "admin"
#: Named tokens: short, plain, safe to print and to put in a log line.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Named tokens start with this, so a secret scanner (or a person) can tell what one is.
_NAMED_PREFIX = "jpt_"


class Role(enum.IntEnum):
    """What a credential may do; each role can do everything the roles below it can."""

    VIEWER = 1  # every read
    ANALYST = 2  # + scan import, chat that reaches a paid LLM
    ADMIN = 3  # + scan delete, KEV refresh, breakers, features, credentials

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r}: use viewer, analyst or admin") from None


class TokenError(ValueError):
    """A token command that cannot be done (a bad or reserved name)."""


class TokenExistsError(TokenError):
    """There is already a token by that name."""


def token_digest(token: str) -> bytes:
    """SHA-256 of a token: what is stored and what a session is bound to."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so a token cannot be guessed byte by byte from timings.

    Both sides are hashed first: ``compare_digest`` then compares equal-length values and not
    even the length of the expected token shows in the time taken.
    """
    if not given:
        return False
    return hmac.compare_digest(token_digest(given), token_digest(expected))


@dataclass(frozen=True)
class Credential:
    """A credential that authenticated: its name, its role and the digest of its token."""

    name: str
    role: Role
    digest: bytes


@dataclass(frozen=True)
class TokenInfo:
    """A named token as ``jupiter token list`` shows it (never the token)."""

    name: str
    role: Role
    created: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.label, "created": self.created}


# ---------------------------------------------------------------- the admin token


def _new_admin_token() -> str:
    return secrets.token_urlsafe(32)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def load_or_create_token(data_dir: Path) -> str:
    """The stored admin token, creating one (0600) if there is none.

    Creation is atomic: two processes starting at once end up with the same token.
    """
    path = Path(data_dir) / TOKEN_FILE
    token = _read_text(path)
    if token:
        return token
    candidate = _new_admin_token()
    if not write_private_if_absent(path, (candidate + "\n").encode()):
        existing = _read_text(path)
        if existing:
            return existing
        write_private_atomic(path, (candidate + "\n").encode())  # it was empty: replace it
    return candidate


def rotate_token(data_dir: Path) -> str:
    """Replace the stored admin token with a new one and return it. Running servers sharing
    the data dir refuse the old token (and end its sessions) from their next request."""
    token = _new_admin_token()
    write_private_atomic(Path(data_dir) / TOKEN_FILE, (token + "\n").encode())
    return token


def _configured_admin_token(settings: object) -> str | None:
    configured = getattr(settings, "admin_token", None)
    if configured is not None and configured.get_secret_value():
        return str(configured.get_secret_value())
    return None


def admin_token_for(settings: object) -> str:
    """The configured token (``JUPITER_ADMIN_TOKEN``) or the stored/generated one."""
    configured = _configured_admin_token(settings)
    if configured is not None:
        return configured
    return load_or_create_token(Path(settings.data_dir))  # type: ignore[attr-defined]


# ---------------------------------------------------------------- named tokens


@contextlib.contextmanager
def _tokens_lock(data_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write of tokens.json between processes (two CLIs at once)."""
    path = Path(data_dir) / _LOCK_FILE
    create_private_file(path)
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: the atomic rename still holds
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _parse_tokens(raw: bytes) -> dict[str, dict[str, Any]]:
    """``{name: {"role", "sha256", "created"}}``; entries that do not make sense are dropped
    (a hand-edited file must not make every token fail, nor grant a role by accident)."""
    try:
        document = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    entries = document.get("tokens") if isinstance(document, dict) else None
    result: dict[str, dict[str, Any]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        name, role, digest = entry.get("name"), entry.get("role"), entry.get("sha256")
        if not (isinstance(name, str) and _NAME.match(name) and name != ADMIN_NAME):
            continue
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            continue
        try:
            parsed_role = Role.parse(str(role))
        except ValueError:
            continue
        result[name] = {
            "role": parsed_role,
            "sha256": bytes.fromhex(digest),
            "created": str(entry.get("created") or ""),
        }
    return result


def _read_tokens(data_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        return _parse_tokens((Path(data_dir) / TOKENS_FILE).read_bytes())
    except FileNotFoundError:
        return {}


def _write_tokens(data_dir: Path, tokens: dict[str, dict[str, Any]]) -> None:
    document = {
        "version": 1,
        "tokens": [
            {
                "name": name,
                "role": entry["role"].label,
                "sha256": entry["sha256"].hex(),
                "created": entry["created"],
            }
            for name, entry in sorted(tokens.items())
        ],
    }
    payload = json.dumps(document, indent=2).encode() + b"\n"
    write_private_atomic(Path(data_dir) / TOKENS_FILE, payload)


def _check_name(name: str) -> str:
    if name == ADMIN_NAME:  # taken, by the admin token: a conflict like any other taken name
        raise TokenExistsError(f"{ADMIN_NAME!r} is the admin token's name; choose another name")
    if not _NAME.match(name):
        raise TokenError(
            "a token name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def create_token(data_dir: Path, name: str, role: Role) -> str:
    """A new token named ``name`` with ``role``; returned once, only its hash is kept."""
    _check_name(name)
    token = _NAMED_PREFIX + secrets.token_urlsafe(32)
    with _tokens_lock(data_dir):
        tokens = _read_tokens(data_dir)
        if name in tokens:
            raise TokenExistsError(f"there is already a token named {name!r}; revoke it first")
        tokens[name] = {
            "role": role,
            "sha256": token_digest(token),
            "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        _write_tokens(data_dir, tokens)
    return token


def list_tokens(data_dir: Path) -> list[TokenInfo]:
    """Every named token (name, role, created), by name."""
    return [
        TokenInfo(name, entry["role"], entry["created"])
        for name, entry in sorted(_read_tokens(data_dir).items())
    ]


def revoke_token(data_dir: Path, name: str) -> bool:
    """Delete the token named ``name``; False if there is none."""
    with _tokens_lock(data_dir):
        tokens = _read_tokens(data_dir)
        if tokens.pop(name, None) is None:
            return False
        _write_tokens(data_dir, tokens)
    return True


# ---------------------------------------------------------------- watching the files

T = TypeVar("T")


class _WatchedFile(Generic[T]):
    """A file's parsed content, re-read whenever the file changes (or appears, or goes).

    ``os.stat`` is a few microseconds; every rewrite here is an atomic rename, which gives the
    file a new inode, so a change is seen even within one mtime tick.
    """

    def __init__(self, path: Path, parse: Callable[[bytes | None], T]) -> None:
        self.path = path
        self._parse = parse
        self._signature: tuple[int, int, int] | bool | None = False  # False: never read
        self._value: T = parse(None)

    def get(self) -> T:
        try:
            info = os.stat(self.path)
            signature: tuple[int, int, int] | None = (info.st_ino, info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            signature = None
        if signature != self._signature:
            try:
                raw: bytes | None = self.path.read_bytes() if signature is not None else None
            except FileNotFoundError:
                raw, signature = None, None
            self._value = self._parse(raw)
            self._signature = signature
        return self._value


@dataclass(frozen=True)
class _NamedTokens:
    by_digest: dict[bytes, Credential]
    by_name: dict[str, Credential]


def _named_tokens(raw: bytes | None) -> _NamedTokens:
    entries = _parse_tokens(raw) if raw is not None else {}
    credentials = [Credential(name, e["role"], e["sha256"]) for name, e in entries.items()]
    return _NamedTokens({c.digest: c for c in credentials}, {c.name: c for c in credentials})


class CredentialStore:
    """The credentials of one data dir, always current (see the module docstring).

    Thread-safe: requests may check credentials from worker threads.
    """

    def __init__(self, data_dir: Path, *, configured_admin_token: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self._configured = configured_admin_token
        self._lock = threading.Lock()
        self._admin = _WatchedFile(self.data_dir / TOKEN_FILE, _admin_file)
        self._configured_credential = (
            _admin_credential(configured_admin_token) if configured_admin_token else None
        )
        self._named = _WatchedFile(self.data_dir / TOKENS_FILE, _named_tokens)
        self._key = _WatchedFile(self.data_dir / SESSION_KEY_FILE, _session_key_file)
        if configured_admin_token is None:
            load_or_create_token(self.data_dir)
        self.session_key()

    @classmethod
    def for_settings(cls, settings: object) -> CredentialStore:
        return cls(
            Path(settings.data_dir),  # type: ignore[attr-defined]
            configured_admin_token=_configured_admin_token(settings),
        )

    @property
    def admin_from_environment(self) -> bool:
        return self._configured is not None

    def admin_token(self) -> str:
        """The current admin token (created again if its file was deleted)."""
        if self._configured is not None:
            return self._configured
        with self._lock:
            current = self._admin.get()
        return current[0] if current is not None else load_or_create_token(self.data_dir)

    def _admin_credential(self) -> Credential:
        if self._configured_credential is not None:
            return self._configured_credential
        with self._lock:
            current = self._admin.get()
        if current is None:  # deleted: a new token is made, as at first start
            return _admin_credential(load_or_create_token(self.data_dir))
        return current[1]

    def authenticate(self, token: str) -> Credential | None:
        """The credential ``token`` is, or None. Constant time in the token's content: the
        digest is looked up (a hash table on a SHA-256 leaks nothing usable) and the admin
        token is compared with ``compare_digest``."""
        if not token:
            return None
        digest = token_digest(token)
        admin = self._admin_credential()
        if hmac.compare_digest(digest, admin.digest):
            return admin
        with self._lock:
            return self._named.get().by_digest.get(digest)

    def by_name(self, name: str) -> Credential | None:
        """The credential named ``name`` as it is now (a session checks it is still the one
        it was made for)."""
        if name == ADMIN_NAME:
            return self._admin_credential()
        with self._lock:
            return self._named.get().by_name.get(name)

    def session_key(self) -> bytes:
        """The key that signs sessions; created (0600) at first use. Deleting the file ends
        every session (a new key is made)."""
        with self._lock:
            key = self._key.get()
            if key is None:
                write_private_if_absent(
                    self.data_dir / SESSION_KEY_FILE, (secrets.token_hex(32) + "\n").encode()
                )
                key = self._key.get()
            if key is None:  # present but unreadable (truncated, hand-edited): replace it
                write_private_atomic(
                    self.data_dir / SESSION_KEY_FILE, (secrets.token_hex(32) + "\n").encode()
                )
                key = self._key.get()
        if key is None:  # pragma: no cover - the file vanished again at once
            raise RuntimeError("the session key could not be created")
        return key


def _admin_credential(token: str) -> Credential:
    return Credential(ADMIN_NAME, Role.ADMIN, token_digest(token))


def _admin_file(raw: bytes | None) -> tuple[str, Credential] | None:
    """The token and its credential, hashed once per change of the file (not per check)."""
    if raw is None:
        return None
    token = raw.decode("utf-8", "replace").strip()
    return (token, _admin_credential(token)) if token else None


def _session_key_file(raw: bytes | None) -> bytes | None:
    if raw is None:
        return None
    text = raw.decode("ascii", "replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return None
    return key if len(key) >= 32 else None
