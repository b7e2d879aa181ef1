"""The ``jupiter`` command: ``serve``, ``status``, ``token`` and ``feeds sync``.

``jupiter serve`` binds 127.0.0.1 unless told otherwise, prints the URL and the admin token
(generated at first start and stored 0600 in the data dir, as Jupyter does) and runs uvicorn
with one worker: several workers need shared breaker state, which a later issue brings.

``jupiter token`` shows the admin token (``--rotate`` replaces it); ``jupiter token create
--role viewer|analyst|admin NAME``, ``list`` and ``revoke NAME`` manage named tokens. A running
server sees every change on its next request.

Every command runs under umask 077: whatever it creates in the data dir is private.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import pathlib
import re
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "WS_MAX_FRAME_BYTES",
    "SettingsProblem",
    "build_parser",
    "load_settings",
    "main",
    "ws_max_frame_bytes",
]

#: The default largest WebSocket frame uvicorn accepts (``JUPITER_WS_MAX_FRAME_BYTES``); above
#: it the server closes the socket with code 1009 (message too big) before the app sees the
#: frame. The app's own limit (``JUPITER_WS_MAX_MESSAGE_BYTES``, 16 KiB by default, at most
#: 1 MiB) is kept well below it, so a message that is merely too long gets an ``error`` event
#: and the socket stays open.
WS_MAX_FRAME_BYTES = 4 * 1024 * 1024


def ws_max_frame_bytes(settings: Any) -> int:
    """uvicorn's ``ws_max_size``: the ``ws_max_frame_bytes`` setting."""
    return int(settings.ws_max_frame_bytes)


class SettingsProblem(Exception):
    """The configuration (``JUPITER_*`` variables or ``.env``) is invalid; ``lines`` say why.

    :func:`main` prints the lines and exits with status 2 instead of showing a traceback.
    """

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _setting_source(field: str) -> str:
    """The environment variable a Settings field is read from (``JUPITER_LOG_FORMAT``)."""
    from jupiter.settings import Settings

    info = Settings.model_fields.get(field)
    if info is None:  # already an alias such as XAI_API_KEY
        return field
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"JUPITER_{field.upper()}"


def _is_secret(field: str) -> bool:
    """True for a ``SecretStr`` setting, looked up by field name or by alias."""
    from pydantic import SecretStr

    from jupiter.settings import Settings

    info = Settings.model_fields.get(field) or next(
        (f for f in Settings.model_fields.values() if f.validation_alias == field), None
    )
    return info is not None and SecretStr in getattr(
        info.annotation, "__args__", (info.annotation,)
    )


def _rule_broken(field: str, error: Any) -> str:
    """pydantic's message, except for secrets: "at least 16 characters, not 11" tells the length
    of the rejected token, so a secret gets the rule alone."""
    if not _is_secret(field):
        return str(error["msg"])
    context = error.get("ctx") or {}
    if "min_length" in context:
        return f"must be at least {context['min_length']} characters long"
    if "max_length" in context:
        return f"must be at most {context['max_length']} characters long"
    return "is not a valid value"


def _describe_settings_error(exc: Exception) -> list[str]:
    """One line per bad setting, naming its variable and the rule it breaks, never the value:
    pydantic's ``str(error)`` includes each rejected input, secrets such as the token too."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            location = [str(part) for part in error["loc"]]
            if not location:  # a check across several settings: its message names them
                lines.append(f"jupiter: invalid settings: {error['msg']}")
                continue
            name = _setting_source(location[0])
            where = "".join(f"[{part}]" for part in location[1:])
            rule = _rule_broken(location[0], error)
            lines.append(f"jupiter: invalid setting {name}{where}: {rule}")
        return lines
    # pydantic-settings' SettingsError (e.g. a list setting that is not JSON) names the field.
    match = re.search(r'field "([^"]+)"', str(exc))
    if match:
        name = _setting_source(match.group(1))
        return [f"jupiter: invalid setting {name}: cannot parse the value (JSON expected)"]
    return [f"jupiter: invalid settings: {exc}"]


def load_settings(**overrides: Any) -> Any:
    """The validated settings; :class:`SettingsProblem` when the configuration is invalid."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from jupiter.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except (ValidationError, SettingsError) as exc:
        raise SettingsProblem(_describe_settings_error(exc)) from None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class _StopSignals:
    """SIGTERM and SIGINT for ``jupiter serve``, from its first line to its last.

    uvicorn handles both while it serves (graceful shutdown: responses in flight finish, the
    lifespan flushes the journal and the writer) and afterwards re-raises the signal it caught.
    Outside that window (imports, settings, binding, and that re-raise) these handlers only
    note the signal: no ``KeyboardInterrupt`` traceback, no death by SIGTERM before the data is
    flushed. The exit code is 0 after SIGTERM (a requested stop, what service managers expect)
    and 130 after Ctrl-C (the shell's convention, 128 + SIGINT).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _note(self, sig: int, _frame: object) -> None:
        if self.received is None or sig == signal.SIGINT:  # Ctrl-C wins: the user typed it
            self.received = sig

    def exit_code(self) -> int:
        return 128 + signal.SIGINT if self.received == signal.SIGINT else 0

    def uvicorn_server(self, config: Any) -> Any:
        """A ``uvicorn.Server`` that also hears a signal noted just before it took over."""
        import uvicorn

        stop = self

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                with super().capture_signals():
                    if stop.received is not None:
                        self.handle_exit(stop.received, None)
                    yield

        return Server(config)


def cmd_serve(args: argparse.Namespace) -> int:
    stop = getattr(args, "stop_signals", None)
    if stop is None:  # called directly, not through main()
        with _StopSignals() as stop:
            code = _serve(args, stop)
    else:
        code = _serve(args, stop)
    return stop.exit_code() if stop.received is not None else code


def _serve(args: argparse.Namespace, stop: _StopSignals) -> int:
    import uvicorn

    from jupiter.private_files import ensure_private_dir
    from jupiter.service.app import create_app
    from jupiter.service.auth import AccessPolicy, is_loopback
    from jupiter.service.logs import configure_logging
    from jupiter.service.serving import uvicorn_options
    from jupiter.service.tokens import admin_token_for
    from jupiter.storage.journal import before_acknowledge

    settings = load_settings(host=args.host, port=args.port)
    ensure_private_dir(settings.data_dir)
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
    if not is_loopback(settings.host):
        print(
            "WARNING: listening on a non-loopback address; put TLS in front of it.",
            file=sys.stderr,
            flush=True,
        )
        policy = AccessPolicy.from_settings(settings)
        if policy.anonymous_role is not None:
            print(
                "WARNING: JUPITER_ANONYMOUS_ROLE=viewer: anyone who reaches this address can "
                "read findings, scans and error contexts without a token.",
                file=sys.stderr,
                flush=True,
            )
        if policy.allowed_hosts is None:
            print(
                "WARNING: any Host name is accepted; set JUPITER_ALLOWED_HOSTS to the names "
                "Jupiter is reached by (DNS rebinding defence).",
                file=sys.stderr,
                flush=True,
            )
    app = create_app(settings)
    # The server's budgets (header size and time, keep-alive, frame size, pings, write stalls):
    # see jupiter.service.serving and docs/security.md#budgets.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_config=None,  # our handler (request IDs, JSON, secret scrubbing) is already installed
        access_log=False,  # the request middleware logs each request with its ID
        timeout_graceful_shutdown=5,
        **uvicorn_options(settings),
    )
    if stop.received is not None:  # stopped while starting: nothing was served yet
        sock.close()
        return 0
    try:
        stop.uvicorn_server(config).run(sockets=[sock])
    finally:
        # A second Ctrl-C skips the lifespan's shutdown: still write what the journal holds,
        # so the next start replays it.
        before_acknowledge()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import httpx

    settings = load_settings()
    url = args.url or f"http://{settings.host}:{settings.port}"
    headers = {}
    if args.token_file is not None:
        # From a file, never the command line (which other users can read in `ps`).
        try:
            secret = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"jupiter: cannot read {args.token_file}: {exc.strerror}", file=sys.stderr)
            return 2
        headers["Authorization"] = f"Bearer {secret}"
    try:
        response = httpx.get(url.rstrip("/") + "/api/status", timeout=args.timeout, headers=headers)
    except httpx.HTTPError as exc:
        print(f"jupiter: no server answers at {url} ({type(exc).__name__})", file=sys.stderr)
        return 1
    if response.status_code in (401, 403):
        print(
            f"jupiter: {url} wants a credential (HTTP {response.status_code}); pass a viewer "
            "token with --token-file",
            file=sys.stderr,
        )
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

    settings = load_settings()
    if args.rotate:
        if settings.admin_token is not None:
            print(
                "jupiter: the admin token comes from JUPITER_ADMIN_TOKEN, so it cannot be "
                "rotated here; set a new value there and restart the server.",
                file=sys.stderr,
            )
            return 2
        token = rotate_token(settings.data_dir)
        print(token)
        print(
            "The old admin token no longer works, and its browser sessions have ended, in every "
            "running server that uses this data dir.",
            file=sys.stderr,
        )
        return 0
    print(admin_token_for(settings))
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from jupiter.service.tokens import Role, TokenError, create_token

    settings = load_settings()
    try:
        token = create_token(settings.data_dir, args.name, Role.parse(args.role))
    except TokenError as exc:
        print(f"jupiter: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(
        f"Token {args.name!r} ({args.role}) created. It is shown this once: only its hash is "
        "kept. Revoke it with `jupiter token revoke NAME`.",
        file=sys.stderr,
    )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from jupiter.service.tokens import list_tokens

    settings = load_settings()
    tokens = list_tokens(settings.data_dir)
    if args.json:
        print(json.dumps([t.to_dict() for t in tokens], indent=2))
        return 0
    admin_from = "JUPITER_ADMIN_TOKEN" if settings.admin_token is not None else "admin_token"
    print(f"{'NAME':<24} {'ROLE':<8} CREATED")
    print(f"{'admin':<24} {'admin':<8} ({admin_from}; `jupiter token` shows it)")
    for entry in tokens:
        print(f"{entry.name:<24} {entry.role.label:<8} {entry.created}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from jupiter.service.tokens import revoke_token

    settings = load_settings()
    if not revoke_token(settings.data_dir, args.name):
        print(
            f"jupiter: there is no token named {args.name!r} (`jupiter token list`)",
            file=sys.stderr,
        )
        return 1
    print(
        f"Token {args.name!r} revoked; it and its browser sessions stop working at once.",
        file=sys.stderr,
    )
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

    settings = load_settings()
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


def port_number(text: str) -> int:
    """argparse type for ``--port``: an integer from 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{port} is out of range: a port is 0 (any free port) to 65535"
        )
    return port


def positive_seconds(text: str) -> float:
    """argparse type for ``--timeout``: a finite number of seconds greater than 0."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds greater than 0")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupiter", description="Jupiter security dashboard")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the dashboard server")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=port_number, default=None, help="port (default 8000; 0 = any free)"
    )
    serve.set_defaults(func=cmd_serve)

    status = sub.add_parser("status", help="show the status of a running server")
    status.add_argument("--url", default=None, help="server URL (default from the settings)")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.add_argument(
        "--token-file",
        type=pathlib.Path,
        default=None,
        help="a file holding a token (viewer is enough) for a server that asks for one",
    )
    status.add_argument(
        "--timeout", type=positive_seconds, default=5.0, help="seconds to wait (default 5)"
    )
    status.set_defaults(func=cmd_status)

    token = sub.add_parser(
        "token", help="show the admin token (or --rotate it); create, list, revoke named ones"
    )
    token.add_argument("--rotate", action="store_true", help="generate a new admin token")
    token.set_defaults(func=cmd_token)
    token_sub = token.add_subparsers(dest="token_command", required=False)
    create = token_sub.add_parser("create", help="create a named token with a role")
    create.add_argument(
        "--role", required=True, choices=("viewer", "analyst", "admin"), help="what it may do"
    )
    create.add_argument("name", help="a name for it (letters, digits, . _ -)")
    create.set_defaults(func=cmd_token_create)
    listing = token_sub.add_parser("list", help="list named tokens (never the tokens)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a named token")
    revoke.add_argument("name", help="the token's name")
    revoke.set_defaults(func=cmd_token_revoke)

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
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["serve"]:
        # From the first moment: building the parser imports every area, which takes a while.
        with _StopSignals() as stop:
            parser = build_parser()
            args = parser.parse_args(argv)
            args.stop_signals = stop
            if stop.received is not None:
                return stop.exit_code()
            return _run(args)
    parser = build_parser()
    return _run(parser.parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from jupiter.private_files import private_umask

    try:
        # Whatever a command creates (the database and its -wal/-shm, spools, caches, token
        # files) is readable by its owner only; restored afterwards for in-process callers.
        with private_umask():
            return int(args.func(args) or 0)
    except SettingsProblem as problem:
        for line in problem.lines:
            print(line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C in a command that does not handle it: no traceback
        print("jupiter: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
