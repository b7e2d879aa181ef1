"""Fuzz: hostile LLM replies against a real ``jupiter serve`` subprocess.

One server chats (provider ``openai``) with an OpenAI-compatible upstream on loopback whose
replies are the hand-written hostile documents of :mod:`support.hostile` (nesting to depth
10^5, a 10^4-digit number, a 16 MB reply text, truncated JSON, a gzip bomb, invalid UTF-8,
NUL bytes...), a reply dripped a few bytes at a time, and Hypothesis mutations of a valid
chat completion. Chats go through ``POST /api/chat`` (and one through the socket). After
every one:

* the server still answers ``/healthz``, and its peak resident memory grew less than 100 MB
  over the chat (``VmHWM`` of ``/proc/<pid>/status``, reset before it);
* a hostile reply is a clear chat error: ``bad_upstream_response`` naming the limit (with its
  name, maximum and JSON path in the error) or the problem, or ``timeout`` for the drip,
  recorded in the recent errors; it counts as an upstream failure for the chat breaker;
* a mutation is an answer or a clear chat error.

Chat works again once the upstream answers normally. The number of cases and the largest
growth are printed at the end (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings

from support.hostile import JSON_INSERTIONS, Case, json_cases, mutated
from support.memory import RssWatch
from support.openai_upstream import OpenAIUpstream, chat_completion
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(300)

TOKEN = "fuzz-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
KEY = "sk-fuzz-upstream-key-0123456789"
MAX_GROWTH_MB = 100
MUTATIONS = 25
TIMEOUT_SECONDS = 1.0
GOOD = chat_completion("Log4Shell (CVE-2021-44228) is a JNDI injection in Log4j 2.")
# A reply's limits are tighter than a catalog's: these are refused by an earlier one.
REFUSED_BY = {
    "nested-1e5": "number of values",
    "nested-objects-1e5": "size in bytes",
    "string-16MB": "size in bytes",
    "many-values": "size in bytes",
}
CASES = json_cases(GOOD, string_path=["choices", 0, "message", "content"])


@dataclass
class Rig:
    server: ServerProcess
    client: httpx.Client
    upstream: OpenAIUpstream
    watch: RssWatch
    cases: dict[str, int] = field(default_factory=dict)

    def chat(self, message: str = "What is CVE-2021-44228?") -> dict[str, Any]:
        answer = self.client.post("/api/chat", json={"message": message}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def assert_alive_and_bounded(self, what: str) -> None:
        assert self.server.process is not None
        assert self.server.process.poll() is None, f"the server died on {what}"
        assert self.client.get("/healthz").status_code == 200, what
        growth = self.watch.growth_mb()
        assert growth < MAX_GROWTH_MB, f"{what}: RSS grew {growth:.0f} MB"
        self.cases[what.split(" ")[0]] = self.cases.get(what.split(" ")[0], 0) + 1

    def chat_failures(self) -> list[dict[str, Any]]:
        answer = self.client.get("/api/recent-errors", params={"limit": 20}, headers=ADMIN)
        return [e for e in answer.json()["errors"] if e["type"] == "chat_failure"]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with OpenAIUpstream() as upstream:
        data_dir: Path = tmp_path_factory.mktemp("fuzz-llm")
        env = {
            "JUPITER_ADMIN_TOKEN": TOKEN,
            "JUPITER_LLM_PROVIDER": "openai",
            "JUPITER_LLM_BASE_URL": upstream.base_url,
            "JUPITER_LLM_API_KEY": KEY,
            "JUPITER_LLM_MODEL": "gpt-test",
            "JUPITER_LLM_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
            # Every chat must reach the upstream: no breaker opening, no retry pauses.
            "JUPITER_BREAKER_FAILURE_THRESHOLD": "1000",
            "JUPITER_RETRY_INITIAL_DELAY_SECONDS": "0",
            "JUPITER_RETRY_MAX_DELAY_SECONDS": "0",
            "JUPITER_WS_CHAT_BURST": "1000",
        }
        server = ServerProcess(data_dir, env=env).start(timeout=120)  # slow on a busy machine
        try:
            assert server.process is not None
            client = httpx.Client(base_url=server.url, timeout=60)
            rig = Rig(server, client, upstream, RssWatch(server.process.pid))
            assert rig.chat()["is_error"] is False  # the good path first
            rig.watch.reset()
            yield rig
            client.close()
            total = sum(rig.cases.values())
            print(  # the figures the issue asks for (shown with -s)
                f"\nLLM reply fuzz: {total} cases {rig.cases}; max RSS growth "
                f"{rig.watch.max_growth_mb:.1f} MB (limit {MAX_GROWTH_MB} MB)"
            )
        finally:
            server.stop()
        log = server.output()
        assert "Traceback" not in log, log[-3000:]
        assert KEY not in log


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_hostile_reply_is_a_clear_chat_error(rig: Rig, case: Case) -> None:
    """The chat answers with the fallback and an error naming the limit (or the problem);
    the error is recorded; the server carries on within its memory budget."""
    rig.upstream.set_raw_reply(case.body, headers=dict(case.headers))
    rig.watch.reset()
    reply = rig.chat()
    rig.assert_alive_and_bounded(f"reply {case.name}")
    expect = REFUSED_BY.get(case.name, case.expect)
    assert reply["is_error"] is True
    error = reply["error"]
    assert error["type"] == "bad_upstream_response"
    assert error["recoverable"] is True
    assert "temporarily unavailable" in reply["response"]
    recorded = rig.chat_failures()[0]
    if "limit" in error:
        assert error["message"].startswith("The chat service sent an answer over a limit: ")
        assert expect in error["message"]
        assert error["limit"].startswith("max_")
        assert expect in recorded["message"]
    assert KEY not in json.dumps(reply)


def test_a_dripping_reply_is_a_timeout_within_llm_timeout_seconds(rig: Rig) -> None:
    """A valid reply sent 64 bytes every 0.2 s (5 s in all): each of the three attempts is
    cut at llm_timeout_seconds, so the chat fails as a timeout long before the drip ends."""
    body = json.dumps(chat_completion("z" * 1500)).encode()
    rig.upstream.set_raw_reply(body, drip_bytes=64, drip_seconds=0.2)
    rig.watch.reset()
    started = time.monotonic()
    reply = rig.chat()
    elapsed = time.monotonic() - started
    rig.assert_alive_and_bounded("reply drip")
    assert reply["is_error"] is True
    assert reply["error"]["type"] == "timeout"
    assert elapsed < 3 * 5.0  # three attempts of at most 1 s each, not three 5 s drips


def test_the_socket_gets_a_chat_error_naming_the_limit(rig: Rig) -> None:
    """On the socket too: a chat_error event with the limit, its maximum and JSON path."""
    nested = next(case for case in CASES if case.name == "number-1e4-digits")
    rig.upstream.set_raw_reply(nested.body)

    async def ask() -> dict[str, Any]:
        async with websockets.connect(
            rig.server.ws_url + "/ws", additional_headers=ADMIN, max_size=2**22
        ) as ws:
            await ws.send(json.dumps({"event": "chat_message", "data": {"message": "hi"}}))
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if event["event"] in ("chat_response", "chat_error"):
                    return dict(event)

    event = asyncio.run(ask())
    rig.assert_alive_and_bounded("socket number-1e4-digits")
    assert event["event"] == "chat_error"
    assert event["data"]["type"] == "bad_upstream_response"
    assert event["data"]["limit"] == "max_number_chars"
    assert event["data"]["location"]["json_path"].startswith("$.")


def test_mutations_of_a_valid_reply_never_hurt_the_server(rig: Rig) -> None:
    """Hypothesis mutations of a chat completion: an answer or a clear error, every time."""

    @settings(
        max_examples=MUTATIONS,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=mutated(json.dumps(GOOD).encode(), JSON_INSERTIONS))
    def one(body: bytes) -> None:
        rig.upstream.set_raw_reply(body)
        rig.watch.reset()
        reply = rig.chat()
        rig.assert_alive_and_bounded("mutation")
        if reply["is_error"] and "error" in reply:
            assert reply["error"]["type"] in ("bad_upstream_response", "upstream_error")
            assert reply["error"]["message"]
        else:
            assert isinstance(reply["response"], str)

    one()


def test_chat_works_again_once_the_upstream_does(rig: Rig) -> None:
    """After all of the above, a normal reply is a normal answer."""
    rig.upstream.set_fault("ok")
    rig.upstream.set_reply("Back to normal.")
    reply = rig.chat()
    assert reply["is_error"] is False
    assert reply["response"] == "Back to normal."
