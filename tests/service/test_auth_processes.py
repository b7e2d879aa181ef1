"""Two real ``jupiter serve`` processes sharing one data dir, and the ``jupiter token`` CLI:
a rotation, a new token or a revocation reaches every process on its next request. Also the
modes of every file a real server leaves in its data dir."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from jupiter.service.tokens import Role, create_token, list_tokens, revoke_token
from support.server import ServerProcess

ENV = {"JUPITER_LLM_PROVIDER": "offline", "JUPITER_ANONYMOUS_ROLE": "none"}


def jupiter_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPITER_")}
    env["JUPITER_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "jupiter.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_of(server: ServerProcess, headers: dict[str, str]) -> int:
    return httpx.get(server.url + "/api/findings", headers=headers, timeout=10).status_code


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory):
    """Two `jupiter serve` processes on one data dir, which an older version left readable by
    others (a 0755 directory holding a 0644 database)."""
    root = tmp_path_factory.mktemp("shared")
    data_dir = root / "data"
    data_dir.mkdir()
    os.chmod(data_dir, 0o755)
    (data_dir / "jupiter.db").touch()
    os.chmod(data_dir / "jupiter.db", 0o644)
    first = ServerProcess(data_dir, env=ENV)
    second = ServerProcess(data_dir, env=ENV)
    first.log_path = root / "first.log"  # the harness's logs stay out of the data dir
    second.log_path = root / "second.log"
    # Generous start-up time: CI machines are shared, and this starts two servers.
    first.start(timeout=90)
    try:
        second.start(timeout=90)
        try:
            yield data_dir, first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_rotation_reaches_every_process_at_once(two_servers) -> None:
    """`jupiter token --rotate` while two servers run: both refuse the old token and end its
    sessions (opened on either: they share the signing key) on their very next request."""
    data_dir, first, second = two_servers
    old = first.admin_token
    signed_in = httpx.post(first.url + "/api/session", json={"token": old}, timeout=10)
    cookie = {
        "Cookie": f"jupiter_session={signed_in.cookies['jupiter_session']}",
        "X-CSRF-Token": signed_in.json()["csrf_token"],
    }
    for server in (first, second):
        assert status_of(server, bearer(old)) == 200
        assert status_of(server, cookie) == 200  # a session opened on the first works here
        assert status_of(server, {}) == 401

    rotated = jupiter_cli(data_dir, "token", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new != old
    assert "no longer works" in rotated.stderr
    for server in (first, second):
        assert status_of(server, bearer(old)) == 401
        ended = httpx.get(server.url + "/api/findings", headers=cookie, timeout=10)
        assert ended.json()["error"]["type"] == "session_ended"
        assert status_of(server, bearer(new)) == 200
    assert jupiter_cli(data_dir, "token").stdout.strip() == new


def test_named_tokens_appear_and_go_in_every_process(two_servers) -> None:
    """A token made with the CLI works on both servers at once; revoked through one server's
    API, the other refuses it on the next request, its open socket included."""
    data_dir, first, second = two_servers
    admin = bearer(first.admin_token)
    # What `jupiter token create` does (tests/test_cli.py runs the command itself), from this
    # process: a third one sharing the data dir.
    token = create_token(data_dir, "night-shift", Role.VIEWER)
    for server in (first, second):
        assert status_of(server, bearer(token)) == 200
        refused = httpx.post(
            server.url + "/api/scans", content=b"{}", headers=bearer(token), timeout=10
        )
        assert refused.status_code == 403  # a viewer: no imports

    async def revoke_while_a_socket_is_open() -> tuple[int, str]:
        async with websockets.connect(first.ws_url + "/ws", additional_headers=bearer(token)) as ws:
            assert json.loads(await ws.recv())["event"] == "status_update"
            gone = httpx.delete(second.url + "/api/tokens/night-shift", headers=admin, timeout=10)
            assert gone.status_code == 200
            await ws.send(json.dumps({"event": "request_status", "data": {}}))
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as closed:
                frame = closed.rcvd
            assert frame is not None
            return frame.code, frame.reason

    code, reason = asyncio.run(revoke_while_a_socket_is_open())
    assert code == 4401
    assert "revoked" in reason
    assert status_of(first, bearer(token)) == 401
    assert status_of(second, bearer(token)) == 401
    assert list_tokens(data_dir) == []


def modes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): f"{stat.S_IMODE(path.stat().st_mode):04o}"
        for path in [root, *root.rglob("*")]
    }


def test_a_real_server_keeps_its_data_dir_private(two_servers) -> None:
    """Under `jupiter serve` the data dir is 0700 and everything in it 0600/0700: the database
    and its -wal/-shm, the token files, the session key, the upload spool. The looser ones an
    older version left are tightened at start, with a warning."""
    data_dir, first, _ = two_servers
    token = first.admin_token
    create_token(data_dir, "ci", Role.ANALYST)
    session = httpx.post(first.url + "/api/session", json={"token": token}, timeout=10)
    assert session.status_code == 200
    chat = httpx.post(
        first.url + "/api/chat", json={"message": "What is CWE-79?"}, headers=bearer(token)
    )
    assert chat.status_code == 200
    upload = httpx.post(
        first.url + "/api/scans", content=b"not a scan", headers=bearer(token), timeout=30
    )
    assert upload.status_code == 415
    seen = modes(data_dir)
    assert {"jupiter.db", "jupiter.db-wal", "admin_token", "tokens.json", "session_key"} <= set(
        seen
    ), seen
    loose = {
        name: mode
        for name, mode in seen.items()
        if mode != ("0700" if (data_dir / name).is_dir() else "0600")
    }
    assert loose == {}, seen
    assert seen["."] == "0700"
    assert seen["uploads"] == "0700"
    assert "jupiter.db: 0644 -> 0600" in first.output()
    assert ".: 0755 -> 0700" in first.output()
    revoke_token(data_dir, "ci")
