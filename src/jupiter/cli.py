"""The ``jupiter`` command: ``serve``, ``status``, ``token`` and ``feeds sync``.

``jupiter serve`` binds 127.0.0.1 unless told otherwise, prints the URL and the admin token
(generated at first start and stored 0600 in the data dir, as Jupyter does) and runs uvicorn
with one worker: several workers need shared breaker state, which a later issue brings.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import json
import socket
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["WS_MAX_FRAME_BYTES", "build_parser", "main", "ws_max_frame_bytes"]

#: The largest WebSocket frame uvicorn accepts; above it the server closes the socket with code
#: 1009 (message too big) before the app sees the frame. The app's own limit
#: (``JUPITER_WS_MAX_MESSAGE_BYTES``, 16 KiB by default, at most 1 MiB) is kept well below it,
#: so a message that is merely too long gets an ``error`` event and the socket stays open.
WS_MAX_FRAME_BYTES = 4 * 1024 * 1024


def ws_max_frame_bytes(settings: Any) -> int:
    """uvicorn's ``ws_max_size``: :data:`WS_MAX_FRAME_BYTES`, and at least 4x the app's limit."""
    return max(WS_MAX_FRAME_BYTES, 4 * int(settings.ws_max_message_bytes))


def _settings(**overrides: Any) -> Any:
    from jupiter.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from jupiter.service.app import create_app
    from jupiter.service.logs import configure_logging
    from jupiter.service.tokens import admin_token_for

    settings = _settings(host=args.host, port=args.port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = admin_token_for(settings)
    secrets = [token] + [
        s.get_secret_value()
        for s in (settings.llm_api_key, settings.xai_api_key, settings.openai_api_key)
        if s is not None
    ]
    configure_logging(settings.log_format, settings.log_level, secrets=secrets)
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"jupiter: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    port = sock.getsockname()[1]
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown_host}:{port}"
    print(f"Jupiter is running at {url}/", flush=True)
    print(f"    Admin Console: {url}/admin", flush=True)
    print(f"    Admin token:   {token}", flush=True)
    stored = settings.data_dir / "admin_token"
    print(f"    (stored in {stored}; rotate with `jupiter token --rotate`)", flush=True)
    if not _is_loopback(settings.host):
        print(
            "WARNING: listening on a non-loopback address; put TLS in front of it.",
            file=sys.stderr,
            flush=True,
        )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_config=None,  # our handler (request IDs, JSON, secret scrubbing) is already installed
        access_log=False,  # the request middleware logs each request with its ID
        ws_max_size=ws_max_frame_bytes(settings),
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import httpx

    settings = _settings()
    url = args.url or f"http://{settings.host}:{settings.port}"
    try:
        response = httpx.get(url.rstrip("/") + "/api/status", timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"jupiter: no server answers at {url} ({type(exc).__name__})", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"jupiter: {url} answered HTTP {response.status_code}", file=sys.stderr)
        return 1
    status = response.json()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"health: {status['health']}  ({status['timestamp']})")
    for name, feature in status["features"].items():
        flag = "enabled " if feature["enabled"] else "DISABLED"
        print(
            f"  {name:<22} {flag}  breaker={feature['circuit_breaker']:<9} "
            f"failures={feature['failures']}"
        )
    errors = status["errors"]
    print(f"errors in the last {errors['window_minutes']} min: {errors['total_errors']}")
    return 0 if status["health"] != "unhealthy" else 3


def cmd_token(args: argparse.Namespace) -> int:
    from jupiter.service.tokens import admin_token_for, rotate_token

    settings = _settings()
    if args.rotate:
        if settings.admin_token is not None:
            print("jupiter: JUPITER_ADMIN_TOKEN is set; change it there instead.", file=sys.stderr)
            return 2
        token = rotate_token(settings.data_dir)
        print(token)
        print("The old token no longer works after the server restarts.", file=sys.stderr)
        return 0
    print(admin_token_for(settings))
    return 0


def _stored_kev_fingerprint(service: Any) -> str | None:
    from jupiter.service.knowledge_sync import kev_fingerprint

    reader = getattr(service, "kev_entries", None)
    return kev_fingerprint(reader()) if reader is not None else None


def _refresh_findings_kev(service: Any, database: Any, before: str | None) -> Any:
    """Re-apply KEV to stored scan findings when the sync changed the stored catalog."""
    from jupiter.service.knowledge_sync import catalog_changed

    after = _stored_kev_fingerprint(service)
    if after is None or not catalog_changed(before, after):
        return None
    try:
        from jupiter.scans import FindingEnricher, ScanImporter
    except ImportError:  # the scans area is not installed: no findings to refresh
        return None
    many = service.lookup_kev_many
    enricher = FindingEnricher(lambda cve: many([cve]).get(cve.upper()), kev_lookup_many=many)
    return ScanImporter(database.session_factory, enricher=enricher).refresh_kev()


def cmd_feeds_sync(args: argparse.Namespace) -> int:
    from jupiter.intel import ThreatIntelService
    from jupiter.resilience import CircuitBreaker, ErrorAggregator
    from jupiter.storage import Database

    settings = _settings()
    database = Database.from_settings(settings)
    database.create_all()
    aggregator = ErrorAggregator(window_minutes=settings.error_window_minutes)
    import inspect

    offered = {
        "breaker": CircuitBreaker(
            name="threat_intelligence",
            failure_threshold=settings.breaker_failure_threshold,
            timeout=settings.breaker_timeout_seconds,
        ),
        "aggregator": aggregator,
    }
    params = inspect.signature(ThreatIntelService).parameters
    service = ThreatIntelService(
        settings, database.session_factory, **{k: v for k, v in offered.items() if k in params}
    )
    try:
        before = _stored_kev_fingerprint(service)
        result = asyncio.run(service.sync_feeds())
        # A running server re-reads the stored KEV at its next sync or start; the findings
        # enriched at import time are brought up to date here, once, if the catalog changed.
        refreshed = _refresh_findings_kev(service, database, before)
        if refreshed is not None and isinstance(result, dict):
            result["findings_kev"] = refreshed
    except Exception as exc:
        from jupiter.resilience import handle_api_error

        print(f"jupiter: feed sync failed: {handle_api_error(exc)}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(json.dumps(result, indent=2, default=str) if result is not None else "feeds synced")
    succeeded = result.get("success", True) if isinstance(result, dict) else True
    return 0 if succeeded and aggregator.get_error_stats()["total_errors"] == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupiter", description="Jupiter security dashboard")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the dashboard server")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000; 0 = any free)")
    serve.set_defaults(func=cmd_serve)

    status = sub.add_parser("status", help="show the status of a running server")
    status.add_argument("--url", default=None, help="server URL (default from the settings)")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.add_argument("--timeout", type=float, default=5.0)
    status.set_defaults(func=cmd_status)

    token = sub.add_parser("token", help="show the admin token (or --rotate it)")
    token.add_argument("--rotate", action="store_true", help="generate a new token")
    token.set_defaults(func=cmd_token)

    feeds = sub.add_parser("feeds", help="threat feed commands")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True)
    sync = feeds_sub.add_parser("sync", help="pull the online threat intelligence sources now")
    sync.set_defaults(func=cmd_feeds_sync)

    # Other areas add their own commands: a module ``jupiter.<area>.cli`` with
    # ``register(subparsers)`` (e.g. ``jupiter scans import FILE...``).
    for area in ("scans",):
        try:
            module = importlib.import_module(f"jupiter.{area}.cli")
        except ModuleNotFoundError:
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
