"""The `jupiter` command: token, status, feeds sync (serve runs in tests/service/test_restart)."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import websockets

from jupiter.cli import WS_MAX_FRAME_BYTES, build_parser, main
from jupiter.service.app import create_app
from support.jupiter_app import fast_settings, recv_event, send_event
from support.kev_upstream import KevUpstream, kev_catalog, kev_record
from support.server import ServerThread, free_port, wait_until_healthy


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A private data dir, and no JUPITER_* settings leaking in from the environment."""
    import os

    for key in list(os.environ):
        if key.startswith("JUPITER_"):
            monkeypatch.delenv(key)
    directory = tmp_path / "data"
    monkeypatch.setenv("JUPITER_DATA_DIR", str(directory))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return directory


def test_token_is_generated_once_with_owner_only_permissions(data_dir, capsys):
    """The first `jupiter token` creates a 0600 token file; later calls print the same token."""
    assert main(["token"]) == 0
    first = capsys.readouterr().out.strip()
    assert len(first) >= 32
    path = data_dir / "admin_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["token"]) == 0
    assert capsys.readouterr().out.strip() == first


def test_token_rotate_replaces_the_token(data_dir, capsys):
    """--rotate writes a new token (still 0600) that `jupiter token` then shows."""
    main(["token"])
    old = capsys.readouterr().out.strip()
    assert main(["token", "--rotate"]) == 0
    new = capsys.readouterr().out.strip()
    assert new != old
    assert (data_dir / "admin_token").read_text().strip() == new
    assert stat.S_IMODE((data_dir / "admin_token").stat().st_mode) == 0o600


def test_token_rotate_refuses_when_the_token_comes_from_the_environment(
    data_dir, monkeypatch, capsys
):
    """A token set by JUPITER_ADMIN_TOKEN cannot be rotated on disk."""
    monkeypatch.setenv("JUPITER_ADMIN_TOKEN", "from-the-environment-123456")
    assert main(["token"]) == 0
    assert capsys.readouterr().out.strip() == "from-the-environment-123456"
    assert main(["token", "--rotate"]) == 2
    err = capsys.readouterr().err
    assert "JUPITER_ADMIN_TOKEN" in err
    assert "cannot be rotated here" in err
    assert not (data_dir / "admin_token").exists()


def test_token_create_list_and_revoke(data_dir, capsys):
    """Named tokens: printed once at creation, listed by name and role (never the token nor
    its hash), revoked by name; every file they touch is 0600."""
    assert main(["token", "create", "--role", "analyst", "ci-pipeline"]) == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert token.startswith("jpt_")
    assert len(token) > 40
    assert "shown this once" in captured.err
    assert main(["token", "create", "--role", "viewer", "ci-pipeline"]) == 2
    assert "already a token named 'ci-pipeline'" in capsys.readouterr().err
    assert main(["token", "create", "--role", "viewer", "admin"]) == 2
    assert "admin token's name" in capsys.readouterr().err
    assert main(["token", "create", "--role", "viewer", "no spaces"]) == 2
    capsys.readouterr()

    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ci-pipeline" in listing
    assert "analyst" in listing
    assert token not in listing
    assert main(["token", "list", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["name"], entry["role"]) == ("ci-pipeline", "analyst")
    stored = (data_dir / "tokens.json").read_text()
    assert token not in stored
    for name in ("tokens.json", ".tokens.lock"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700

    assert main(["token", "revoke", "ci-pipeline"]) == 0
    assert "revoked" in capsys.readouterr().err
    assert main(["token", "revoke", "ci-pipeline"]) == 1
    assert "no token named 'ci-pipeline'" in capsys.readouterr().err
    assert main(["token", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_token_create_refuses_an_unknown_role(data_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["token", "create", "--role", "root", "x"])
    assert exc.value.code == 2
    assert "viewer" in capsys.readouterr().err


def test_the_cli_leaves_the_umask_as_it_found_it(data_dir):
    previous = os.umask(0o022)
    try:
        assert main(["token"]) == 0
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(previous)


def test_status_sends_a_token_from_a_file(tmp_path, data_dir, capsys):
    """Beyond loopback (here: anonymous access off) `jupiter status` needs a token: read from
    a file, never from the command line."""
    settings = fast_settings(tmp_path / "srv", anonymous_role="none")
    with ServerThread(create_app(settings)) as server:
        assert main(["status", "--url", server.url]) == 1
        assert "--token-file" in capsys.readouterr().err
        token_file = tmp_path / "token"
        token_file.write_text("test-admin-token-0123456789\n")
        assert main(["status", "--url", server.url, "--token-file", str(token_file)]) == 0
        assert "health: healthy" in capsys.readouterr().out


def test_status_queries_a_running_server(tmp_path, data_dir, capsys):
    """`jupiter status --url` prints health and every component from a live server."""
    with ServerThread(create_app(fast_settings(tmp_path / "srv"))) as server:
        assert main(["status", "--url", server.url]) == 0
        text = capsys.readouterr().out
        assert "health: healthy" in text
        for name in ("grok_chat", "threat_intelligence", "community_pulse", "scan_processing"):
            assert name in text
        assert main(["status", "--url", server.url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["health"] == "healthy"


def test_status_without_a_server_says_so(data_dir, capsys):
    """No server at the URL: exit code 1 and a plain message."""
    assert main(["status", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "1"]) == 1
    assert "no server answers" in capsys.readouterr().err


def test_feeds_sync_pulls_the_kev_feed_into_the_database(data_dir, monkeypatch, capsys):
    """`jupiter feeds sync` fetches the configured KEV URL and stores its records."""
    catalog = kev_catalog([kev_record("CVE-2024-0001"), kev_record("CVE-2024-0002")])
    with KevUpstream(catalog) as upstream:
        monkeypatch.setenv("JUPITER_KEV_URL", upstream.url)
        assert main(["feeds", "sync"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["success"] is True
    assert result["sources"]["kev"]["count"] == 2


def test_feeds_sync_reports_a_failing_feed(data_dir, monkeypatch, capsys):
    """A KEV URL where nothing listens makes the sync fail with exit code 1."""
    monkeypatch.setenv("JUPITER_KEV_URL", f"http://127.0.0.1:{free_port()}/kev.json")
    monkeypatch.setenv("JUPITER_RETRY_INITIAL_DELAY_SECONDS", "0")
    assert main(["feeds", "sync"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["success"] is False


def test_serve_defaults_to_loopback(data_dir):
    """`jupiter serve` binds 127.0.0.1 unless --host says otherwise."""
    args = build_parser().parse_args(["serve"])
    assert args.host is None
    from jupiter.settings import Settings

    assert Settings().host == "127.0.0.1"
    assert build_parser().parse_args(["serve", "--port", "0"]).port == 0


def test_a_command_is_required():
    """`jupiter` alone is a usage error."""
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`jupiter serve --port P` in a subprocess, with no --host: ``(url, port)``."""
    data_dir = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JUPITER_")},
        "JUPITER_DATA_DIR": str(data_dir),
        "JUPITER_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = data_dir / "serve.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupiter.cli", "serve", "--port", str(port)],
            env=env,
            cwd=data_dir,  # no stray .env
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", 30, process)
        printed = re.search(r"running at (http://\S+?)/?$", log_path.read_text(), re.MULTILINE)
        assert printed, log_path.read_text()
        yield printed.group(1), port
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def listening_addresses(port: int) -> list[str]:
    """The local addresses of every listening TCP socket on ``port`` (IPv4 and IPv6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def non_loopback_address() -> str | None:
    """This machine's outward IPv4 address, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_serve_without_host_listens_on_loopback_only(served):
    """`jupiter serve` with no --host prints a 127.0.0.1 URL and listens on 127.0.0.1 alone."""
    url, port = served
    assert url == f"http://127.0.0.1:{port}"
    # 127.0.0.1 in /proc's little-endian hex; no 0.0.0.0 or IPv6 listener on the port.
    assert listening_addresses(port) == ["0100007F"]
    outward = non_loopback_address()
    if outward is not None:
        with pytest.raises(OSError):
            socket.create_connection((outward, port), timeout=2).close()


async def test_serve_answers_oversize_messages_with_an_error_and_refuses_giant_frames(served):
    """Under `jupiter serve`, a message over the app's limit but under uvicorn's frame limit
    gets an `error` event on an open socket; a frame over the frame limit is closed with 1009."""
    url, _ = served
    ws_url = url.replace("http://", "ws://") + "/ws"
    too_long = json.dumps({"event": "chat_message", "data": {"message": "x" * (2 << 20)}})
    assert 16 * 1024 < len(too_long) < WS_MAX_FRAME_BYTES
    async with websockets.connect(ws_url, max_size=None) as ws:
        await recv_event(ws, "status_update")
        await ws.send(too_long)
        error = await recv_event(ws, "error")
        assert error["data"]["type"] == "message_too_large"
        await send_event(ws, "request_status")
        assert (await recv_event(ws, "status_update"))["event"] == "status_update"
    async with websockets.connect(ws_url, max_size=None) as ws:
        await recv_event(ws, "status_update")
        await ws.send("x" * (WS_MAX_FRAME_BYTES + 1))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_event(ws, "error")
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize("port", ["-1", "65536", "99999", "eighty"])
def test_serve_refuses_a_bad_port_with_a_usage_error(data_dir, capsys, port):
    """`jupiter serve --port` outside 0..65535 (or not a number) exits 2 naming the range."""
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", port])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--port" in err
    assert "port" in err.split("--port", 1)[1]
    assert "Traceback" not in err
    assert not (data_dir / "admin_token").exists()  # refused before anything started


@pytest.mark.parametrize("timeout", ["-5", "0", "nan", "inf", "soon"])
def test_status_refuses_a_bad_timeout_with_a_usage_error(data_dir, capsys, timeout):
    """`jupiter status --timeout` must be a finite number of seconds above 0: else exit 2."""
    with pytest.raises(SystemExit) as exc:
        main(["status", "--timeout", timeout, "--url", "http://127.0.0.1:1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err
    assert "no server answers" not in err


def test_a_bad_environment_setting_is_named_without_a_traceback(data_dir, monkeypatch, capsys):
    """A bad JUPITER_* value makes every command exit 2 with one line naming the variable."""
    monkeypatch.setenv("JUPITER_LOG_FORMAT", "xml")
    for argv in (["token"], ["status"], ["feeds", "sync"], ["serve", "--port", "0"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.splitlines() == [
            "jupiter: invalid setting JUPITER_LOG_FORMAT: Input should be 'text' or 'json'"
        ]
        assert "xml" not in err
    assert not (data_dir / "admin_token").exists()


def test_a_bad_port_variable_is_named(data_dir, monkeypatch, capsys):
    """JUPITER_PORT=abc: `jupiter serve` exits 2 naming JUPITER_PORT, not a traceback."""
    monkeypatch.setenv("JUPITER_PORT", "abc")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "JUPITER_PORT" in err
    assert "Traceback" not in err


def test_a_rejected_admin_token_is_never_echoed(data_dir, monkeypatch, capsys):
    """A too-short JUPITER_ADMIN_TOKEN is named with its rule; neither its value nor its
    length is printed, and every bad setting gets its own line."""
    secret = "s3cr3t-tok"
    monkeypatch.setenv("JUPITER_ADMIN_TOKEN", secret)
    monkeypatch.setenv("JUPITER_PORT", "-4")
    assert main(["token"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 2
    assert "JUPITER_ADMIN_TOKEN" in captured.err
    assert "JUPITER_PORT" in captured.err
    assert "16 characters" in captured.err
    assert secret not in captured.err + captured.out
    assert str(len(secret)) not in captured.err


def test_a_malformed_list_setting_is_named(data_dir, monkeypatch, capsys):
    """JUPITER_PULSE_FEEDS that is not JSON: exit 2, the variable named, the value not shown."""
    monkeypatch.setenv("JUPITER_PULSE_FEEDS", "[not-json-value")
    assert main(["token"]) == 2
    err = capsys.readouterr().err
    assert "JUPITER_PULSE_FEEDS" in err
    assert "not-json-value" not in err


def test_a_bad_setting_gives_no_traceback_from_the_installed_command(data_dir, tmp_path):
    """The real `python -m jupiter.cli` process: exit 2 and a one-line error on stderr."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JUPITER_")},
        "JUPITER_DATA_DIR": str(data_dir),
        "JUPITER_LOG_FORMAT": "xml",
    }
    done = subprocess.run(
        [sys.executable, "-m", "jupiter.cli", "token"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "JUPITER_LOG_FORMAT" in done.stderr
