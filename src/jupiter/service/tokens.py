"""The admin token: generated at first start and kept in the data dir, readable only by its owner.

Like Jupyter's token, it is printed by ``jupiter serve`` and can be shown or rotated with
``jupiter token``. ``JUPITER_ADMIN_TOKEN`` overrides the stored one.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

__all__ = ["TOKEN_FILE", "admin_token_for", "load_or_create_token", "rotate_token", "token_matches"]

TOKEN_FILE = "admin_token"  # noqa: S105 - a file name, not a secret


def _write_private(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Created 0600 from the start (not chmod-ed after), so it is never world-readable.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_or_create_token(data_dir: Path) -> str:
    """The stored token, creating one (0600) if there is none."""
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
            return token
    token = secrets.token_urlsafe(32)
    _write_private(path, token)
    return token


def rotate_token(data_dir: Path) -> str:
    """Replace the stored token with a new one and return it."""
    token = secrets.token_urlsafe(32)
    _write_private(Path(data_dir) / TOKEN_FILE, token)
    return token


def admin_token_for(settings: object) -> str:
    """The configured token (``JUPITER_ADMIN_TOKEN``) or the stored/generated one."""
    configured = getattr(settings, "admin_token", None)
    if configured is not None and configured.get_secret_value():
        return str(configured.get_secret_value())
    return load_or_create_token(Path(settings.data_dir))  # type: ignore[attr-defined]


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte from timings."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
