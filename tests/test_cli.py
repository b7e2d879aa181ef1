"""The `jupiter` command: token, status, feeds sync (serve runs in tests/service/test_restart)."""

from __future__ import annotations

import json
import stat

import pytest

from jupiter.cli import build_parser, main
from jupiter.service.app import create_app
from support.jupiter_app import fast_settings
from support.kev_upstream import KevUpstream, kev_catalog, kev_record
from support.server import ServerThread, free_port


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
    assert "JUPITER_ADMIN_TOKEN" in capsys.readouterr().err


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
