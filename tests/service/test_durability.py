"""Nothing acknowledged is lost: a real `jupiter serve` under real traffic, killed with SIGKILL
(no shutdown, no flush), stopped with SIGTERM or Ctrl-C, and restarted.

"Acknowledged" means the client got its whole HTTP response. Errors are recorded by rejected
scan uploads (a form whose ``format`` field is a unique tag: the stored message names the tag,
so every request can be matched to its row); state changes by feature and breaker toggles;
chat turns by REST chat with the offline knowledge base. Each test prints its counts (run with
``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from jupiter.storage import Database
from jupiter.storage.journal import MAGIC, decode_frames, encode_frame
from jupiter.storage.models import ChatMessage, ErrorRecord, StateChange
from support.databases import postgres_schema, search_path_url
from support.rawhttp import RawHttp
from support.server import ServerProcess

TAG = re.compile(r"(t\d+-\d+)")
CLIENTS = 8


# ----- helpers -------------------------------------------------------------------------------


def server_for(tmp_path: Path, database_url: str | None = None, **env: str) -> ServerProcess:
    values = {
        "JUPITER_LLM_PROVIDER": "offline",
        # Re-seed the aggregator with every stored error, so /api/error-stats counts them all.
        "JUPITER_STORAGE_RESTORE_ERRORS": "100000",
        **env,
    }
    if database_url:
        values["JUPITER_DATABASE_URL"] = database_url
    return ServerProcess(tmp_path / "data", env=values)


def lazy_writer_server(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, commit_every: str
) -> ServerProcess:
    """A server on ``backend`` whose writer commits only every ``commit_every`` seconds: at a
    kill, much of what was acknowledged is in the journal alone."""
    url = request.getfixturevalue("postgres_database_url") if backend == "postgresql" else None
    return server_for(
        tmp_path,
        url,
        JUPITER_STORAGE_FLUSH_INTERVAL_SECONDS=commit_every,
        JUPITER_STORAGE_FLUSH_BATCH_SIZE="100000",
    )


def database_of(server: ServerProcess) -> Database:
    url = server.env.get("JUPITER_DATABASE_URL") or f"sqlite:///{server.data_dir / 'jupiter.db'}"
    return Database(url)


def stored_tags(server: ServerProcess) -> list[str]:
    """The tag of every stored scan_rejected error, in insertion order (duplicates kept)."""
    database = database_of(server)
    try:
        with database.session_factory() as session:
            messages = session.scalars(
                select(ErrorRecord.message)
                .where(ErrorRecord.type == "scan_rejected")
                .order_by(ErrorRecord.id)
            ).all()
    finally:
        database.dispose()
    return [m.group(1) for m in map(TAG.search, messages) if m]


def count_rows(server: ServerProcess, model: type) -> int:
    database = database_of(server)
    try:
        with database.session_factory() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    except Exception:  # the table does not exist yet (start-up is still creating it)
        return 0
    finally:
        database.dispose()


def admin(server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_token}"}


_FORM_TYPE = "multipart/form-data; boundary=b"


def _form(tag: str) -> bytes:
    """An upload naming the format ``tag``: refused (415) and recorded with the tag."""
    return (
        f'--b\r\nContent-Disposition: form-data; name="format"\r\n\r\n{tag}\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nx\r\n'
        "--b--\r\n"
    ).encode()


async def reject_scans(
    server: ServerProcess, acked: set[str], sent: set[str], stop: asyncio.Event, client: int
) -> None:
    """One client: rejected uploads until told to stop or the server goes away."""
    async with RawHttp("127.0.0.1", server.port, headers=admin(server)) as http:
        i = 0
        while not stop.is_set():
            tag = f"t{client}-{i}"
            i += 1
            sent.add(tag)
            try:
                status, _ = await http.request(
                    "POST", "/api/scans", body=_form(tag), content_type=_FORM_TYPE
                )
            except ConnectionError:
                return
            assert 400 <= status < 500, status
            acked.add(tag)


async def flood_then(
    server: ServerProcess, target: int, interrupt: signal.Signals
) -> tuple[set[str], set[str]]:
    """CLIENTS clients reject scans; once ``target`` are acknowledged, ``interrupt`` the server
    while they are still sending (mid-stream), and wait for all of them to notice."""
    acked: set[str] = set()
    sent: set[str] = set()
    never = asyncio.Event()
    tasks = [
        asyncio.create_task(reject_scans(server, acked, sent, never, c)) for c in range(CLIENTS)
    ]
    while len(acked) < target:
        await asyncio.sleep(0.01)
        if all(t.done() for t in tasks):
            await asyncio.gather(*tasks)  # raise what stopped them
            raise AssertionError("every client stopped before the target")
    assert server.process is not None
    if interrupt is signal.SIGKILL:
        await asyncio.to_thread(server.kill)
    else:
        server.process.send_signal(interrupt)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return acked, sent


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url, "jupiter_durability") as schema:
        yield search_path_url(postgres_url, schema)


# ----- kill -9 -------------------------------------------------------------------------------


def test_kill_9_mid_stream_loses_none_of_10000_acknowledged_errors(tmp_path, request):
    """10,000 errors through real traffic from 8 clients, SIGKILL mid-stream, restart: every
    error whose response arrived is stored exactly once and served by the API."""
    server = lazy_writer_server(tmp_path, request, "sqlite", "2")
    server.start()
    try:
        acked, sent = asyncio.run(flood_then(server, 10_000, signal.SIGKILL))
        committed_at_kill = len(stored_tags(server))
        server.start()
        tags = stored_tags(server)
        stored = set(tags)
        lost = acked - stored
        print(
            f"\nkill -9: {len(acked)} acknowledged, {committed_at_kill} committed at the kill, "
            f"{len(tags)} stored after restart, lost {len(lost)}, duplicates "
            f"{len(tags) - len(stored)}"
        )
        assert len(acked) >= 10_000
        assert lost == set()
        assert len(tags) == len(stored)  # no duplicates
        assert stored <= sent  # and nothing invented
        assert committed_at_kill < len(acked)  # the journal did the work
        with httpx.Client(base_url=server.url, headers=admin(server), timeout=30) as client:
            stats = client.get("/api/error-stats").json()
            recent = client.get("/api/recent-errors", params={"limit": 1000}).json()["errors"]
        assert stats["errors_by_type"]["scan_rejected"] == len(tags)
        recent_tags = {TAG.search(e["message"]).group(1) for e in recent}  # type: ignore[union-attr]
        assert len(recent_tags) == 1000
        assert recent_tags <= stored
        # Each client's last acknowledged error is among the newest ones served.
        for client_id in range(CLIENTS):
            last = max(
                (t for t in acked if t.startswith(f"t{client_id}-")),
                default=None,
                key=lambda t: int(t.split("-")[1]),
            )
            assert last in recent_tags
    finally:
        server.stop()
    assert "Traceback" not in server.output()


async def toggle_and_chat(server: ServerProcess, target: int) -> tuple[list[str], int, list[str]]:
    """Three clients: feature toggles with unique reasons, breaker toggles, chat turns in
    their own conversations; SIGKILL once ``target`` actions of each were acknowledged."""
    reasons: list[str] = []
    breaker_acks = [0]
    questions: list[str] = []

    async def features(http: RawHttp) -> None:
        i = 0
        while True:
            action = "disable" if i % 2 == 0 else "enable"
            reason = f"t9-{i} {action}"
            status, _ = await http.request(
                "POST", f"/api/features/pulse/{action}", json={"reason": reason}
            )
            assert status == 200
            reasons.append(reason)
            i += 1

    async def breakers(http: RawHttp) -> None:
        i = 0
        while True:
            action = "force-open" if i % 2 == 0 else "reset"
            status, _ = await http.request("POST", f"/api/breakers/intel/{action}")
            assert status == 200
            breaker_acks[0] += 1
            i += 1

    async def chat(http: RawHttp) -> None:
        i = 0
        while True:
            question = f"What is CWE-{79 + i % 10}? (t7-{i})"
            status, _ = await http.request(
                "POST", "/api/chat", json={"message": question, "conversation_id": f"c-{i % 5}"}
            )
            assert status == 200
            questions.append(question)
            i += 1

    async def run(work) -> None:  # type: ignore[no-untyped-def]
        try:
            async with RawHttp("127.0.0.1", server.port, headers=admin(server)) as http:
                await work(http)
        except ConnectionError:
            return

    tasks = [asyncio.create_task(run(w)) for w in (features, breakers, chat)]
    while min(len(reasons), breaker_acks[0], len(questions)) < target:
        await asyncio.sleep(0.01)
        if any(t.done() for t in tasks):
            await asyncio.gather(*tasks)
            raise AssertionError("a client stopped before the target")
    await asyncio.to_thread(server.kill)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return reasons, breaker_acks[0], questions


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_loses_no_acknowledged_state_change_or_chat_turn(tmp_path, backend, request):
    """Feature and breaker toggles and chat turns, SIGKILL mid-stream, restart: every one that
    was answered is stored (feature changes by their unique reasons, breaker transitions by
    count, chat turns question and answer) and the history API serves them."""
    server = lazy_writer_server(tmp_path, request, backend, "2")
    server.start()
    try:
        reasons, breaker_acks, questions = asyncio.run(toggle_and_chat(server, 150))
        server.start()
        database = database_of(server)
        with database.session_factory() as session:
            changes = session.execute(
                select(StateChange.kind, StateChange.component, StateChange.reason).order_by(
                    StateChange.id
                )
            ).all()
            turns = session.execute(
                select(ChatMessage.role, ChatMessage.content).order_by(ChatMessage.id)
            ).all()
        database.dispose()
        feature_reasons = [r for k, c, r in changes if k == "feature" and c == "community_pulse"]
        breaker_changes = [
            r for k, c, r in changes if k == "breaker" and c == "threat_intelligence"
        ]
        asked = [content for role, content in turns if role == "user"]
        answers = sum(1 for role, _ in turns if role == "assistant")
        print(
            f"\nkill -9: {len(reasons)} feature toggles, {breaker_acks} breaker toggles, "
            f"{len(questions)} chat turns acknowledged; stored {len(feature_reasons)}, "
            f"{len(breaker_changes)}, {len(asked)} (+{answers} answers)"
        )
        assert set(reasons) <= set(feature_reasons)
        assert len(feature_reasons) == len(set(feature_reasons))
        assert len(feature_reasons) <= len(reasons) + 1  # the one in flight at the kill
        assert breaker_acks <= len(breaker_changes) <= breaker_acks + 1
        assert set(questions) <= set(asked)
        assert len(asked) == len(set(asked))
        assert answers == len(asked)
        with httpx.Client(base_url=server.url, headers=admin(server), timeout=30) as client:
            history = client.get("/api/history").json()["changes"]
        served = {c["reason"] for c in history if c["component"] == "community_pulse"}
        assert set(reasons) <= served
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("backend", "interrupt"),
    [("sqlite", signal.SIGKILL), ("postgresql", signal.SIGKILL), ("sqlite", signal.SIGTERM)],
    ids=["sqlite-sigkill", "postgresql-sigkill", "sqlite-sigterm"],
)
def test_replay_interrupted_by_a_kill_or_sigterm_still_stores_each_error_once(
    tmp_path, backend, interrupt, request
):
    """Nothing committed (a 60 s interval), SIGKILL: all of it waits in the journal, whose last
    frame is then torn as a kill mid-write leaves it. The restart warns about the torn frame and
    replays one row per transaction; it is interrupted half-way (SIGKILL, or SIGTERM, which lets
    the start-up finish and then stops cleanly). The next start completes it: each error once."""
    server = lazy_writer_server(tmp_path, request, backend, "60")
    server.start()
    acked, _ = asyncio.run(flood_then(server, 600, signal.SIGKILL))
    assert stored_tags(server) == []
    segments = sorted((server.data_dir / "journal").glob("*.jnl"))
    newest = max(segments, key=lambda p: p.stat().st_size)
    with newest.open("ab") as segment:  # the kill landed in the middle of the next write
        segment.write(encode_frame(10**9, ("error", 1.0, "scan_rejected", "torn", None))[:-7])
    server.env["JUPITER_STORAGE_FLUSH_BATCH_SIZE"] = "1"
    server.start(wait=False)
    deadline = time.monotonic() + 60
    while (during := count_rows(server, ErrorRecord)) == 0:
        assert time.monotonic() < deadline, "the replay did not start"
        assert server.process is not None
        assert server.process.poll() is None, server.output()
        time.sleep(0.005)
    assert server.process is not None
    if interrupt is signal.SIGKILL:
        server.kill()
    else:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0
    after_interrupt = len(stored_tags(server))
    assert 0 < during < len(acked), "the interruption did not land during the replay"
    server.env["JUPITER_STORAGE_FLUSH_BATCH_SIZE"] = "200"
    server.start()
    try:
        tags = stored_tags(server)
        print(
            f"\nreplay interrupted by {interrupt.name} after {during}-{after_interrupt} of "
            f"{len(acked)} rows; after the next start {len(tags)} stored, lost "
            f"{len(acked - set(tags))}, duplicates {len(tags) - len(set(tags))}"
        )
        assert set(tags) >= acked
        assert len(tags) == len(set(tags))
        assert "torn" not in tags
        if interrupt is signal.SIGTERM:
            assert after_interrupt == len(tags)  # the start-up finished its replay first
    finally:
        server.stop()
    output = server.output()
    assert "torn frame" in output
    assert "Traceback" not in output


# ----- SIGTERM and Ctrl-C --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interrupt", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["sigterm", "sigint"]
)
def test_sigterm_and_ctrl_c_mid_traffic_lose_nothing_and_print_no_traceback(
    tmp_path, interrupt, code
):
    """The signal lands while 8 clients are sending: the server finishes what is in flight,
    commits everything (so the journal it leaves holds no record: the next start replays
    nothing) and exits with the conventional code, without a traceback."""
    server = server_for(tmp_path, JUPITER_STORAGE_FLUSH_INTERVAL_SECONDS="60")
    server.start()
    acked, _ = asyncio.run(flood_then(server, 500, interrupt))
    assert server.process is not None
    assert server.process.wait(60) == code
    assert "Traceback" not in server.output()
    committed = stored_tags(server)
    assert set(committed) >= acked  # committed by the shutdown itself, not by a replay
    assert len(committed) == len(set(committed))
    segments = list((server.data_dir / "journal").glob("*.jnl"))
    assert segments  # the newest one's name carries the numbering on
    for segment in segments:
        entries, _, problem = decode_frames(segment.read_bytes()[len(MAGIC) :])
        assert problem is None
        assert entries == []  # released: the database has all of it
    print(f"\n{interrupt.name}: {len(acked)} acknowledged, {len(committed)} stored, exit {code}")


@pytest.mark.parametrize(
    ("interrupt", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["sigterm", "sigint"]
)
@pytest.mark.parametrize("moment", ["importing", "lifespan"])
def test_a_signal_during_start_up_exits_cleanly(tmp_path, interrupt, code, moment):
    """Ctrl-C or SIGTERM while the server is still starting (importing its areas, or running
    the lifespan's start-up once it printed its URL): the conventional exit code, no traceback."""
    server = server_for(tmp_path)
    server.start(wait=False)
    assert server.process is not None
    deadline = time.monotonic() + 60
    if moment == "importing":
        # Past the interpreter's own start (the command's first line installs the handlers),
        # well before the areas are imported and the port is bound.
        time.sleep(0.5)
    else:
        while "Jupiter is running at" not in server.output():
            assert time.monotonic() < deadline
            assert server.process.poll() is None, server.output()
            time.sleep(0.01)
    server.process.send_signal(interrupt)
    assert server.process.wait(60) == code, server.output()
    assert "Traceback" not in server.output()


def test_ctrl_c_in_another_command_exits_130_without_a_traceback(monkeypatch, capsys):
    """Outside `serve` (which handles its signals itself) a KeyboardInterrupt ends the command
    with 130 and one line, not a traceback."""
    from jupiter import cli

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_status", interrupted)
    assert cli.main(["status"]) == 130
    assert capsys.readouterr().err == "jupiter: interrupted\n"
