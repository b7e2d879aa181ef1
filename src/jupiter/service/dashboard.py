"""The JupiterDashboard: a breaker and a feature flag per component, and the services behind them.

How a component plugs in
------------------------
A component is a :class:`ComponentSpec` in :data:`COMPONENTS`: an internal name (the feature
flag's and breaker's name, e.g. ``scan_processing``), a public alias for the REST API (``scans``),
a fallback, and a *factory*. At startup the dashboard calls ``factory(ctx)`` with a
:class:`ComponentContext` (settings, database session factory, this component's breaker, the
dashboard's aggregator and degradation, a retry policy built from the settings, the clock, and
``publish(event, data)`` to push a socket event to every client from any thread). The factory
returns the component's service object (sync or ``async def``). The dashboard keeps it in
``dashboard.services[name]``; routers reach it through ``dashboard.service(name)``.

* If the factory raises, it is retried (``component_init_attempts``); if it still fails, the
  feature is disabled with the error as reason, and the other components start anyway. A
  background task retries failed components every ``component_recovery_interval_seconds``
  and re-enables them when they come up.
* Scans: ``jupiter.scans`` provides ``create_service(ctx)``; the ``jupiter.service.routers.scans``
  router is included by ``create_app`` when it exists. Until then scan_processing is registered
  with its flag and breaker and no service.
* Tests pass ``factories={"grok_chat": ...}`` to ``create_app``/``JupiterDashboard`` to replace a
  factory (e.g. one that always fails).

Breaker transitions and feature changes are persisted (``StateChange`` rows, for the status
page's history, with who made them: ``admin``, ``auto`` or ``system``, see :data:`ACTORS`) and
pushed to every socket as ``status_update``.

KEV records the intel component stores reach the offline chat assistant's knowledge base (the
one :attr:`JupiterDashboard.knowledge_base` names) in the background once intel has started, and
after every feed sync; a sync that changed the stored catalog also re-enriches stored scan
findings (see :mod:`jupiter.service.knowledge_sync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jupiter.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Clock,
    ErrorAggregator,
    GracefulDegradation,
    build_error_response,
    retry_with_backoff,
    safe_api_call_async,
)
from jupiter.resilience._clock import SYSTEM_CLOCK
from jupiter.settings import Settings
from jupiter.storage import BackgroundWriter, Database, load_conversation, load_recent_errors
from jupiter.storage.journal import Entry, journal_from_settings

from .hub import WebSocketHub
from .knowledge_sync import KevPropagation, KevPropagator, sync_signature

__all__ = [
    "ACTORS",
    "ALIASES",
    "CHAT_FALLBACK",
    "COMPONENTS",
    "SYSTEM_PROMPT",
    "ComponentContext",
    "ComponentSpec",
    "JupiterDashboard",
    "UnknownComponentError",
]

log = logging.getLogger("jupiter.dashboard")

SYSTEM_PROMPT = (
    "You are Jupiter, a security operations assistant. Answer questions about vulnerabilities, "
    "threats, weaknesses (CWE), attack techniques (MITRE ATT&CK) and their mitigations. Be "
    "accurate and concise, cite identifiers such as CWE-89, CVE-2021-44228 or T1190 where they "
    "apply, and say so plainly when you are not sure. Never reveal secrets or credentials."
)
CHAT_TEMPERATURE = 0.7
CHAT_MAX_TOKENS = 600
CHAT_HISTORY = 10
CHAT_RETRIES = 2

CHAT_FALLBACK = (
    "Chat with Jupiter is temporarily unavailable. The threat feed, community pulse and "
    "status panels keep working; please try again in a little while."
)
THREATS_FALLBACK: dict[str, Any] = {
    "items": [],
    "count": 0,
    "success": False,
    "stale": False,
    "age_seconds": None,
    "sources": {},
}
PULSE_FALLBACK: dict[str, Any] = {"items": [], "sources": {}, "trending": []}

Factory = Callable[["ComponentContext"], Any]

#: Who made a state change, as stored with it: an operator through the admin API or CLI
#: (``admin``), the resilience core reacting to failures or successes (``auto``: a breaker
#: tripping or closing after trial calls), or the service's own lifecycle (``system``: a
#: component that failed to start is switched off, and back on when it recovers).
ACTORS = ("admin", "auto", "system")
# The breaker core's reasons for the two transitions only an operator can cause.
_MANUAL_BREAKER_REASONS = frozenset({"reset", "forced open"})


class UnknownComponentError(KeyError):
    """A feature or breaker name that the dashboard does not know."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        known = ", ".join(sorted(ALIASES))
        return f"unknown feature {self.name!r}; known features: {known}"


@dataclass(frozen=True)
class ComponentSpec:
    """A dashboard component: its flag/breaker name, REST alias, label, fallback and factory."""

    name: str
    alias: str
    label: str
    fallback: Any
    factory: Factory | None = None


@dataclass
class ComponentContext:
    """What a component factory gets to build its service."""

    name: str
    settings: Settings
    database: Database
    breaker: CircuitBreaker
    aggregator: ErrorAggregator
    degradation: GracefulDegradation
    retry: Any
    clock: Clock
    publish: Callable[[str, dict[str, Any]], None]
    dashboard: JupiterDashboard

    @property
    def session_factory(self) -> Any:
        return self.database.session_factory


# ----- default factories -------------------------------------------------------------------


def _construct(cls: type, ctx: ComponentContext, **extra: Any) -> Any:
    """Build ``cls(settings, session_factory, **kw)`` passing only the keywords it accepts."""
    offered = {
        "breaker": ctx.breaker,
        "retry": ctx.retry,
        "aggregator": ctx.aggregator,
        "error_aggregator": ctx.aggregator,
        "degradation": ctx.degradation,
        "clock": ctx.clock,
        "publish": ctx.publish,
        **extra,
    }
    params = inspect.signature(cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in offered.items() if accepts_any or k in params}
    return cls(ctx.settings, ctx.session_factory, **kwargs)


def build_chat(ctx: ComponentContext) -> Any:
    """The LLM provider the settings choose (offline knowledge base by default)."""
    from jupiter.llm import provider_from_settings

    # The dashboard's knowledge base, so the KEV records it is fed are the ones chat answers from.
    provider = provider_from_settings(ctx.settings, knowledge_base=ctx.dashboard.knowledge_base)
    if provider.is_offline:
        # Build the offline index in the background so startup stays fast.
        with contextlib.suppress(Exception):
            provider.warm_up(background=True)
    return provider


def build_intel(ctx: ComponentContext) -> Any:
    from jupiter.intel import ThreatIntelService

    return _construct(ThreatIntelService, ctx)


def build_pulse(ctx: ComponentContext) -> Any:
    from jupiter.intel import CommunityPulseService

    return _construct(CommunityPulseService, ctx)


def build_scans(ctx: ComponentContext) -> Any:
    """``jupiter.scans.create_service(ctx)`` when the scans area is installed, else nothing."""
    try:
        module = importlib.import_module("jupiter.scans")
    except ModuleNotFoundError as exc:
        if exc.name in ("jupiter.scans",):
            return None
        raise
    create = getattr(module, "create_service", None)
    return create(ctx) if create is not None else None


COMPONENTS: tuple[ComponentSpec, ...] = (
    ComponentSpec("grok_chat", "chat", "Chat with Jupiter", CHAT_FALLBACK, build_chat),
    ComponentSpec(
        "threat_intelligence", "intel", "Threat intelligence", THREATS_FALLBACK, build_intel
    ),
    ComponentSpec("community_pulse", "pulse", "Community pulse", PULSE_FALLBACK, build_pulse),
    ComponentSpec(
        "scan_processing",
        "scans",
        "Scan processing",
        {"error": "scan processing is unavailable"},
        build_scans,
    ),
)
ALIASES: dict[str, str] = {spec.alias: spec.name for spec in COMPONENTS}


def _now_iso(clock: Clock) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.wall()))


class _ChatFailed:
    """Sentinel fallback for safe_api_call: tells a failed call from a reply."""

    def __init__(self) -> None:
        self.error: BaseException | None = None


# ----- the dashboard ----------------------------------------------------------------------


class JupiterDashboard:
    """The service core: components, breakers, flags, aggregator, persistence and the socket hub."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        database: Database | None = None,
        clock: Clock = SYSTEM_CLOCK,
        factories: Mapping[str, Factory] | None = None,
        hub: WebSocketHub | None = None,
        knowledge_base: Any = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        breaker_watch_interval: float = 1.0,
    ) -> None:
        self.settings = settings or Settings()
        self.clock = clock
        # The background loops wait in real time (``sleep``; tests step them), never on
        # ``clock``: a FakeClock's sleep advances time at once, which would spin a loop.
        self._sleep = sleep
        # How long the breaker watcher waits at most before looking again. It normally sleeps
        # until the earliest open breaker is due; the cap keeps it honest when ``clock`` is not
        # wall time (a FakeClock moved by a test) and costs one check a second while one is open.
        self.breaker_watch_interval = breaker_watch_interval
        self.database = database or Database.from_settings(self.settings)
        self.writer = BackgroundWriter(
            self.database.session_factory,
            flush_interval=self.settings.storage_flush_interval_seconds,
            batch_size=self.settings.storage_flush_batch_size,
        )
        self.hub = hub or WebSocketHub()
        self.aggregator = ErrorAggregator(
            window_minutes=self.settings.error_window_minutes,
            # Stats cover the window; the chart's 240-minute view needs the longer history.
            history_minutes=self.settings.error_history_minutes,
            clock=clock,
            max_recent=max(self.settings.storage_restore_errors, 200),
        )
        # Every recorded error (already redacted) is queued for the database and buffered for
        # the journal; never blocks. The entry listener is the hot path's cheap form (no record
        # dict per error): the writer's method itself, so not even a call of ours in between.
        self.aggregator.add_entry_listener(self.writer.record_error_entry)
        # Written before every acknowledgement, replayed at start (see jupiter.storage.journal).
        self.journal = journal_from_settings(self.settings)
        self.journal_error: str | None = None
        self.degradation = GracefulDegradation(clock=clock)
        self.specs: dict[str, ComponentSpec] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.services: dict[str, Any] = {}
        self.init_errors: dict[str, str] = {}
        self.started = False
        self.startup_error: str | None = None
        self.database_ready = False
        self._factories = dict(factories or {})
        self._recovery_task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._breaker_changed: asyncio.Event | None = None
        self._init_lock = asyncio.Lock()
        self._conversations: OrderedDict[str, deque[dict[str, str]]] = OrderedDict()
        self._enable_reasons: dict[str, str] = {}
        self._change_actors: dict[str, str] = {}
        self._knowledge_base = knowledge_base
        self.kev_propagator = KevPropagator(lambda: self.knowledge_base)
        self._kev_tasks: set[asyncio.Task[Any]] = set()
        self._threat_sync_signature: tuple[tuple[str, str | None], ...] | None = None
        self.degradation.add_listener(self._on_feature_change)
        for spec in COMPONENTS:
            self._register(spec)
        self.hub.set_status_builder(self.status_payload)

    # ----- registration -----
    def _register(self, spec: ComponentSpec) -> None:
        self.specs[spec.name] = spec
        self.degradation.register_feature(spec.name, enabled=True, fallback=spec.fallback)
        breaker = CircuitBreaker(
            name=spec.name,
            failure_threshold=self.settings.breaker_failure_threshold,
            timeout=self.settings.breaker_timeout_seconds,
            clock=self.clock,
            excluded_exceptions=self._excluded_for(spec.name),
        )
        breaker.add_listener(self._on_breaker_change)
        self.breakers[spec.name] = breaker

    @staticmethod
    def _excluded_for(name: str) -> tuple[type[BaseException], ...]:
        if name == "grok_chat":
            # A malformed question is the caller's fault, not a verdict on the LLM upstream.
            with contextlib.suppress(ImportError):
                from jupiter.llm import LLMRequestError

                return (LLMRequestError,)
        return ()

    def resolve(self, name: str) -> str:
        """The internal component name for an alias (``chat``) or name (``grok_chat``)."""
        if name in self.specs:
            return name
        if name in ALIASES:
            return ALIASES[name]
        raise UnknownComponentError(name)

    def breaker(self, name: str) -> CircuitBreaker:
        return self.breakers[self.resolve(name)]

    def service(self, name: str) -> Any:
        """The component's service object, or None if it is not initialised."""
        return self.services.get(self.resolve(name))

    def retry_policy(self, max_attempts: int = 3) -> Any:
        """A retry policy with the settings' delays and the dashboard's clock."""
        return retry_with_backoff(
            max_attempts=max_attempts,
            initial_delay=self.settings.retry_initial_delay_seconds,
            backoff_factor=2.0,
            max_delay=self.settings.retry_max_delay_seconds,
            clock=self.clock,
        )

    @property
    def knowledge_base(self) -> Any:
        """The offline chat assistant's knowledge base: the one given, else the process-wide one
        (``default_knowledge_base()``, which the scans enrichment reads CWE entries from too)."""
        if self._knowledge_base is None:
            from jupiter.knowledge import default_knowledge_base

            self._knowledge_base = default_knowledge_base()
        return self._knowledge_base

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to every socket, from any thread."""
        self.hub.broadcast_threadsafe(event, data)

    # ----- lifecycle -----
    async def start(self) -> None:
        """Create tables, restore recent errors, start the writer and every component."""
        self.hub.bind_loop(asyncio.get_running_loop())
        recovered = await asyncio.to_thread(self._open_journal)
        try:
            await asyncio.to_thread(self.database.create_all)
            if self.writer.journal is not None:
                await asyncio.to_thread(self.writer.sync_sequence)
                # What the last process acknowledged but had not committed, committed now (and
                # exactly once: see BackgroundWriter) before the recent errors are read back.
                if not await asyncio.to_thread(self.writer.replay):
                    raise RuntimeError("the journal replay could not be committed")
                if recovered:
                    log.info("📼 journal replayed: %d records", len(recovered))
            restored = await asyncio.to_thread(
                load_recent_errors,
                self.database.session_factory,
                limit=self.settings.storage_restore_errors,
            )
            self.aggregator.load(restored)
            self.database_ready = True
            log.info(
                "✅ database ready (%s); %d recent errors restored",
                self.database.dialect,
                len(restored),
            )
        except Exception as exc:
            # The dashboard still runs on memory alone; /readyz names the database. Recovered
            # journal records stay queued for the writer; their errors are shown meanwhile.
            self.startup_error = f"database unavailable: {type(exc).__name__}"
            self.aggregator.load(_error_records(recovered))
            log.error(
                "❌ database unavailable (%s); running without persistence", type(exc).__name__
            )
        self.writer.start()
        for name in self.specs:
            await self.initialize_component(name, attempts=self.settings.component_init_attempts)
        self._recovery_task = asyncio.create_task(self._recovery_loop(), name="jupiter-recovery")
        self._sync_task = asyncio.create_task(self._feed_sync_loop(), name="jupiter-feed-sync")
        self._breaker_changed = asyncio.Event()
        self._watch_task = asyncio.create_task(
            self._breaker_watch_loop(), name="jupiter-breaker-watch"
        )
        self.started = True

    async def stop(self) -> None:
        """Stop background work and flush everything to the database."""
        self.started = False
        for task in (self._recovery_task, self._sync_task, self._watch_task, *self._kev_tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for connection in self.hub.connections():
            await connection.close()
        for service in self.services.values():
            closer = getattr(service, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
                continue
            closer = getattr(service, "close", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    result = closer()
                    if inspect.isawaitable(result):
                        await result
        await asyncio.to_thread(self.writer.close)
        if self.writer.journal is not None:
            await asyncio.to_thread(self.writer.journal.close)
        await asyncio.to_thread(self.database.dispose)

    def journal_ok(self) -> bool:
        """Whether every record is journaled now: the journal is open, not full, not failing."""
        journal = self.writer.journal
        return journal is not None and journal.is_open and not journal.stats.failing

    def _open_journal(self) -> list[Entry]:
        """Open the journal and hand its records to the writer; without one (switched off, or
        unusable) the service runs on, and /readyz says durability is off."""
        journal = self.journal
        if journal is None:
            return []
        try:
            return self.writer.open_journal(journal)
        except Exception as exc:  # another server on this data dir, or the dir is unusable
            self.journal_error = f"{type(exc).__name__}: {exc}"[:300]
            log.error("❌ journal unavailable (%s); a kill -9 may lose records", self.journal_error)
            return []

    def _context(self, name: str) -> ComponentContext:
        return ComponentContext(
            name=name,
            settings=self.settings,
            database=self.database,
            breaker=self.breakers[name],
            aggregator=self.aggregator,
            degradation=self.degradation,
            retry=self.retry_policy(),
            clock=self.clock,
            publish=self.publish,
            dashboard=self,
        )

    async def initialize_component(self, name: str, *, attempts: int = 1) -> bool:
        """Build one component, retrying; on failure disable its feature and record why."""
        name = self.resolve(name)
        spec = self.specs[name]
        factory = self._factories.get(name, spec.factory)

        async def build() -> Any:
            if factory is None:
                return None
            result = factory(self._context(name))
            if inspect.isawaitable(result):
                result = await result
            return result

        policy = self.retry_policy(max_attempts=attempts)
        try:
            service = await policy.call_async(build)
        except Exception as exc:
            reason = f"initialisation failed: {type(exc).__name__}: {exc}"[:300]
            self.init_errors[name] = reason
            self.services.pop(name, None)
            self.aggregator.record_error(
                "component_init_failed", reason, {"component": name, "attempts": attempts}
            )
            self.disable_feature(name, reason, actor="system")
            log.error("❌ %s failed to start: %s", name, reason)
            return False
        self.services[name] = service
        was_failed = self.init_errors.pop(name, None) is not None
        if was_failed:
            self.enable_feature(name, reason="recovered: initialised", actor="system")
        log.info("✅ %s initialised", name)
        if name == "threat_intelligence" and service is not None:
            # Off the start-up path: reading ~1,500 KEV rows must not delay serving.
            self.schedule_kev_propagation(refresh_findings=False)
        return True

    async def recover_failed(self) -> list[str]:
        """One recovery pass: re-initialise every component that failed to start."""
        recovered = []
        async with self._init_lock:
            for name in list(self.init_errors):
                if await self.initialize_component(name, attempts=1):
                    recovered.append(name)
        return recovered

    async def _recovery_loop(self) -> None:
        interval = self.settings.component_recovery_interval_seconds
        while True:
            await self._sleep(interval)
            if self.init_errors:
                try:
                    recovered = await self.recover_failed()
                except Exception:
                    log.exception("❌ recovery pass failed")
                    continue
                if recovered:
                    log.info("✅ recovered: %s", ", ".join(recovered))

    async def _feed_sync_loop(self) -> None:
        """Pull the online threat sources every ``intel_sync_interval_seconds``."""
        interval = self.settings.intel_sync_interval_seconds
        while True:
            await self._sleep(interval)
            if self.services.get("threat_intelligence") is None or not (
                self.degradation.is_enabled("threat_intelligence")
            ):
                continue
            try:
                await self.sync_feeds()
                log.info("🔍 periodic feed sync done")
            except Exception as exc:  # the service records its own source errors
                log.warning("⚠️ periodic feed sync failed: %s", type(exc).__name__)

    def open_breaker_wait(self) -> float | None:
        """Seconds until the earliest open breaker is due for a trial, or None if none is open.

        Reading each breaker's state is what moves a due one from OPEN to HALF_OPEN (the core
        changes state lazily), so calling this also makes those transitions happen, and their
        listeners push the ``status_update``. Forced-open breakers wait for an operator.
        """
        waits = [
            breaker.retry_after
            for breaker in self.breakers.values()
            if breaker.state is CircuitState.OPEN and not breaker.is_forced_open
        ]
        return min(waits) if waits else None

    async def _breaker_watch_loop(self) -> None:
        """Observe OPEN -> HALF_OPEN when the open period ends, not only at the next call, so
        every socket hears that a trial is due. Idle (no timer) while no breaker is open."""
        changed = self._breaker_changed
        assert changed is not None
        while True:
            changed.clear()
            try:
                wait = self.open_breaker_wait()
            except Exception:  # a broken breaker must not end the watcher
                log.exception("❌ breaker watch failed")
                wait = self.breaker_watch_interval
            if wait is None:
                await changed.wait()  # set by every breaker transition
                continue
            delay = min(max(wait, 0.01), self.breaker_watch_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=delay)

    def _wake_breaker_watch(self) -> None:
        """Tell the watcher a breaker changed (listeners run on any thread)."""
        changed = self._breaker_changed
        loop = self.hub.loop
        if changed is None or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(changed.set)

    # ----- KEV to the knowledge base and to stored findings -----
    async def sync_feeds(self, **kwargs: Any) -> dict[str, Any]:
        """Pull the threat sources now, then hand the stored KEV to the knowledge base (and
        re-enrich findings if the catalog changed). What the periodic task runs.

        Raises ``RuntimeError`` when the intel component is not running.
        """
        service = self.services.get("threat_intelligence")
        if service is None or not self.degradation.is_enabled("threat_intelligence"):
            raise RuntimeError("threat intelligence is not running")
        result = await service.sync_feeds(**kwargs)
        # Whatever the per-source outcome, what is stored now is what chat should know: a failed
        # source kept its last good data, and an unchanged catalog costs only a digest.
        await self.propagate_kev(refresh_findings=True)
        return dict(result) if isinstance(result, Mapping) else {"result": result}

    async def propagate_kev(self, *, refresh_findings: bool = True) -> KevPropagation | None:
        """Hand the stored KEV records to the knowledge base now; with ``refresh_findings``,
        re-apply KEV to stored findings when the catalog changed. Never raises: a failure is
        logged and recorded, and None returned."""
        intel = self.services.get("threat_intelligence")
        if intel is None or not (hasattr(intel, "akev_entries") or hasattr(intel, "kev_entries")):
            return None  # not running, or a replacement service that stores no KEV
        refresh = self._findings_refresher() if refresh_findings else None
        try:
            outcome = await self.kev_propagator.propagate(intel, refresh_findings=refresh)
        except Exception as exc:
            log.warning("⚠️ could not pass KEV to the knowledge base: %s", type(exc).__name__)
            self.aggregator.record_error(
                "kev_propagation_failed",
                f"passing stored KEV on failed: {type(exc).__name__}",
                {"component": "threat_intelligence"},
            )
            return None
        if outcome.new_in_knowledge_base or outcome.findings:
            log.info(
                "🔍 KEV: %d records, %d new to the knowledge base, findings %s",
                outcome.entries,
                outcome.new_in_knowledge_base,
                dict(outcome.findings) if outcome.findings else "unchanged",
            )
        return outcome

    def schedule_kev_propagation(self, *, refresh_findings: bool = True) -> asyncio.Task[Any]:
        """:meth:`propagate_kev` in a background task (call on the event loop)."""
        task = asyncio.get_running_loop().create_task(
            self.propagate_kev(refresh_findings=refresh_findings), name="jupiter-kev-propagation"
        )
        self._kev_tasks.add(task)
        task.add_done_callback(self._kev_tasks.discard)
        return task

    def _findings_refresher(self) -> Callable[[], Any] | None:
        """``ScanService.refresh_kev`` when scan processing runs, else None."""
        scans = self.services.get("scan_processing")
        refresh = getattr(scans, "refresh_kev", None)
        if refresh is None or not self.degradation.is_enabled("scan_processing"):
            return None
        return refresh

    def _note_threat_sync(self, payload: Mapping[str, Any]) -> None:
        """``fetch_threats`` syncs sources that are due; pass on what such a sync stored."""
        signature = sync_signature(payload)
        if signature and signature != self._threat_sync_signature:
            self._threat_sync_signature = signature
            self.schedule_kev_propagation(refresh_findings=True)

    # ----- state changes -----
    def _on_breaker_change(self, change: Any) -> None:
        old = getattr(change.old, "value", str(change.old))
        new = getattr(change.new, "value", str(change.new))
        marker = "⚠️" if new != "closed" else "✅"
        # Listeners may run on whichever thread delivers the breaker's events, so who caused a
        # transition is read from the change itself: only reset() and force_open() give these.
        actor = "admin" if change.reason in _MANUAL_BREAKER_REASONS else "auto"
        log.info(
            "%s breaker %s: %s -> %s (%s, by %s)",
            *(marker, change.name, old, new, change.reason, actor),
        )
        self.writer.record_state_change(
            "breaker",
            change.name,
            new,
            old_state=old,
            reason=change.reason,
            timestamp=change.at,
            actor=actor,
        )
        self.hub.notify_status_changed()
        self._wake_breaker_watch()

    def _on_feature_change(self, change: Any) -> None:
        state = "enabled" if change.enabled else "disabled"
        reason = change.reason or self._enable_reasons.pop(change.name, None)
        # Degradation listeners run in the thread that made the change, so the actor that
        # disable_feature/enable_feature noted just before is this change's.
        noted = self._change_actors.pop(change.name, None)
        actor = "auto" if getattr(change, "by", "manual") == "auto" else noted or "admin"
        marker = "✅" if change.enabled else "⚠️"
        log.info("%s feature %s %s (%s, by %s)", marker, change.name, state, reason, actor)
        self.writer.record_state_change(
            "feature",
            change.name,
            state,
            old_state="disabled" if change.enabled else "enabled",
            reason=reason,
            timestamp=change.at,
            actor=actor,
        )
        self.hub.notify_status_changed()

    def disable_feature(
        self, name: str, reason: str = "disabled by an operator", *, actor: str = "admin"
    ) -> None:
        """Switch a feature off; ``actor`` (see :data:`ACTORS`) is stored with the change."""
        name = self.resolve(name)
        self._change_actors[name] = _checked_actor(actor)
        try:
            self.degradation.disable_feature(name, reason)
        finally:
            self._change_actors.pop(name, None)

    def enable_feature(self, name: str, reason: str | None = None, *, actor: str = "admin") -> None:
        """Switch a feature on; ``actor`` (see :data:`ACTORS`) is stored with the change."""
        name = self.resolve(name)
        self._change_actors[name] = _checked_actor(actor)
        if reason:
            self._enable_reasons[name] = reason
        try:
            self.degradation.enable_feature(name)
        finally:
            self._enable_reasons.pop(name, None)
            self._change_actors.pop(name, None)

    def reset_breaker(self, name: str) -> str:
        """Close a breaker (admin); returns its new state."""
        breaker = self.breaker(name)
        breaker.reset()
        return breaker.state.value

    def force_open_breaker(self, name: str) -> str:
        """Open a breaker (admin), e.g. during upstream maintenance."""
        breaker = self.breaker(name)
        breaker.force_open()
        return breaker.state.value

    def record_error(
        self, error_type: str, message: str, context: dict[str, Any] | None = None
    ) -> None:
        self.aggregator.record_error(error_type, message, context or {})

    # ----- monitoring -----
    def get_error_stats(self) -> dict[str, Any]:
        return self.aggregator.get_error_stats()

    def get_recent_errors(self, limit: int = 10) -> list[dict[str, Any]]:
        return self.aggregator.get_recent_errors(limit=limit)

    def get_error_timeseries(self, minutes: int = 60) -> Any:
        return self.aggregator.get_timeseries(minutes=minutes)

    def get_feature_status(self) -> dict[str, dict[str, Any]]:
        """The seed's shape, ``{"grok_chat": {"enabled", "circuit_breaker", "failures"}, ...}``,
        plus the alias, label and (when disabled) the reason."""
        snapshot = self.degradation.snapshot()
        status: dict[str, dict[str, Any]] = {}
        for name, spec in self.specs.items():
            breaker = self.breakers[name]
            feature = snapshot.get(name, {}) if isinstance(snapshot, Mapping) else {}
            enabled = self.degradation.is_enabled(name)
            entry: dict[str, Any] = {
                "enabled": enabled,
                "circuit_breaker": breaker.state.value,
                # While open: the failures that opened it (the seed's breaker never read 0 then).
                "failures": breaker.failures,
                "alias": spec.alias,
                "label": spec.label,
            }
            reason = _get(feature, "disabled_reason")
            if not enabled and reason:
                entry["reason"] = reason
            status[name] = entry
        return status

    def health(self, features: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """``healthy`` when every component is up, ``unhealthy`` when none is, else ``degraded``."""
        features = features if features is not None else self.get_feature_status()
        down = [
            n for n, f in features.items() if not f["enabled"] or f["circuit_breaker"] == "open"
        ]
        if len(down) == len(features) or not self.database_ready:
            return "unhealthy" if len(down) == len(features) else "degraded"
        if down or any(f["circuit_breaker"] != "closed" for f in features.values()):
            return "degraded"
        return "healthy"

    def status_payload(self) -> dict[str, Any]:
        """The ``status_update`` event's data (and GET /api/status)."""
        features = self.get_feature_status()
        return {
            "features": features,
            "errors": self.get_error_stats(),
            "timestamp": _now_iso(self.clock),
            "health": self.health(features),
        }

    def feature_status(self, name: str) -> dict[str, Any]:
        return self.get_feature_status()[self.resolve(name)]

    # ----- chat -----
    def conversation(self, conversation_id: str) -> deque[dict[str, str]]:
        """The in-memory history of a REST conversation (bounded; oldest conversations evicted)."""
        history = self._conversations.get(conversation_id)
        if history is None:
            history = deque(maxlen=CHAT_HISTORY)
            self._conversations[conversation_id] = history
            while len(self._conversations) > 1000:
                self._conversations.popitem(last=False)
        else:
            self._conversations.move_to_end(conversation_id)
        return history

    async def load_conversation(self, conversation_id: str) -> deque[dict[str, str]]:
        """The conversation's history: in memory, or its last 10 messages from the database
        (so a conversation continues across a restart)."""
        if conversation_id in self._conversations or not self.database_ready:
            return self.conversation(conversation_id)
        history = self.conversation(conversation_id)
        try:
            stored = await asyncio.to_thread(
                load_conversation,
                self.database.session_factory,
                conversation_id,
                limit=CHAT_HISTORY,
            )
        except Exception as exc:  # history is a nicety; chat must work without it
            log.warning("⚠️ could not load conversation history (%s)", type(exc).__name__)
            return history
        for message in stored:
            history.append({"role": message["role"], "content": message["content"]})
        return history

    async def chat_with_jupiter(
        self,
        message: str,
        history: deque[dict[str, str]] | None = None,
        *,
        conversation_id: str | None = None,
        channel: str = "rest",
    ) -> dict[str, Any]:
        """Ask the LLM, guarded by the chat feature flag, its breaker and safe_api_call.

        Returns ``{"response", "is_error", "feature_status", "timestamp", ...}``; on failure
        also ``"error": {"type", "message", "recoverable", "suggestion", ...}`` and the fallback
        text as ``response``. Only the last 10 messages of the conversation are sent.
        """
        name = "grok_chat"
        history = history if history is not None else deque(maxlen=CHAT_HISTORY)
        timestamp = _now_iso(self.clock)
        provider = self.services.get(name)
        if not self.degradation.is_enabled(name) or provider is None:
            log.warning("⚠️ chat is disabled; serving the fallback")
            return {
                "response": self.degradation.get_fallback(name) or CHAT_FALLBACK,
                "is_error": True,
                "degraded": True,
                "timestamp": timestamp,
                "feature_status": self.feature_status(name),
            }
        log.info("💬 chat request (%d chars)", len(message))
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            *({"role": m["role"], "content": m["content"]} for m in list(history)[-CHAT_HISTORY:]),
            {"role": "user", "content": message},
        ]
        failed = _ChatFailed()

        def remember(exc: BaseException) -> None:
            failed.error = exc
            if not isinstance(exc, CircuitOpenError):
                self.aggregator.record_error(
                    "chat_failure",
                    self._chat_error(exc)["message"],
                    {"component": name, "error": type(exc).__name__, "channel": channel},
                )

        result = await safe_api_call_async(
            provider.acomplete,
            fallback=failed,
            max_retries=CHAT_RETRIES + 1,  # safe_api_call counts attempts: 1 call + 2 retries
            log_name="Grok chat",
            args=(messages,),
            kwargs={"temperature": CHAT_TEMPERATURE, "max_tokens": CHAT_MAX_TOKENS},
            breaker=self.breakers[name],
            on_error=remember,
            exceptions=_retryable_chat_error,
            initial_delay=self.settings.retry_initial_delay_seconds,
            max_delay=self.settings.retry_max_delay_seconds,
            clock=self.clock,
            logger=log,
        )
        if result is failed:
            return {
                "response": self.degradation.get_fallback(name) or CHAT_FALLBACK,
                "is_error": True,
                "error": self._chat_error(failed.error),
                "timestamp": timestamp,
                "feature_status": self.feature_status(name),
            }
        content = str(getattr(result, "content", "") or "")
        is_error = _looks_like_error_reply(content)
        if is_error:
            self.aggregator.record_error(
                "chat_error_reply", "the LLM answered with an error reply", {"channel": channel}
            )
            log.warning("⚠️ the LLM answered with an error reply")
        else:
            log.info("✅ chat answered by %s", getattr(result, "provider", "?"))
        history.append({"role": "user", "content": message})
        history.append({"role": "assistant", "content": content})
        if conversation_id:
            self.writer.record_chat_message(conversation_id, "user", message, channel=channel)
            self.writer.record_chat_message(
                conversation_id, "assistant", content, is_error=is_error, channel=channel
            )
        reply: dict[str, Any] = {
            "response": content,
            "is_error": is_error,
            "timestamp": timestamp,
            "provider": getattr(result, "provider", None),
            "model": getattr(result, "model", None),
            "feature_status": self.feature_status(name),
        }
        citations = getattr(result, "citations", None)
        if citations:
            reply["citations"] = list(citations)
        return reply

    def _chat_error(self, exc: BaseException | None) -> dict[str, Any]:
        """The standard error fields for a failed chat (type, message, recoverable, ...)."""
        if exc is not None and _is_bad_upstream_reply(exc):
            # A broken body from the upstream is its transient fault, not the user's.
            limit = getattr(exc, "limit", None)
            message = "The chat service sent an unreadable answer."
            if limit is not None:
                # Which of Jupiter's reply limits it broke, and where (no reply text).
                message = f"The chat service sent an answer over a limit: {limit}"
            error = build_error_response(
                exc,
                status_code=502,
                error_type="bad_upstream_response",
                message=message,
                suggestion="This is usually temporary; try again shortly.",
                recoverable=True,
                clock=self.clock,
            )["error"]
            if limit is not None:
                error.update(limit.to_dict())
            return error
        return build_error_response(exc or "chat failed", clock=self.clock)["error"]

    # ----- threats and pulse -----
    async def fetch_threats(
        self, filters: Mapping[str, Any] | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """``(ok, payload)``: the intel service's result, or an error body if it is unavailable.

        ``filters`` (source, kind, severity, query, since, limit, offset) are validated first:
        a bad one raises ``ValueError`` naming it.
        """
        args: tuple[Any, ...] = ()
        if filters:
            from jupiter.intel import ThreatFilters

            args = (ThreatFilters.from_value(filters),)
        ok, payload = await self._call_component(
            "threat_intelligence", "fetch_threats", "🔍 threats", *args
        )
        if ok:
            self._note_threat_sync(payload)
        return ok, payload

    async def get_pulse(self) -> tuple[bool, dict[str, Any]]:
        return await self._call_component("community_pulse", "get_pulse", "📡 pulse")

    async def refresh_pulse(self) -> tuple[bool, dict[str, Any]]:
        """:meth:`get_pulse` after fetching every feed now, whatever its age (admin)."""
        return await self._call_component("community_pulse", "refresh", "📡 pulse refresh")

    async def _call_component(
        self, name: str, method: str, what: str, *args: Any
    ) -> tuple[bool, dict[str, Any]]:
        service = self.services.get(name)
        if not self.degradation.is_enabled(name) or service is None:
            body = build_error_response(
                f"{self.specs[name].label} is unavailable",
                status_code=503,
                error_type="feature_disabled",
                recoverable=True,
                suggestion="The feature is disabled or still starting; try again later.",
                clock=self.clock,
            )["error"]
            body["fallback"] = self.degradation.get_fallback(name)
            return False, body
        log.info("%s requested", what)
        try:
            result = await getattr(service, method)(*args)
        except Exception as exc:
            body = build_error_response(exc, clock=self.clock)["error"]
            if not isinstance(exc, CircuitOpenError):
                self.aggregator.record_error(
                    f"{name}_failure",
                    body["message"],
                    {"component": name, "error": type(exc).__name__},
                )
            log.error("❌ %s failed: %s", name, type(exc).__name__)
            body["fallback"] = self.degradation.get_fallback(name)
            return False, body
        return True, dict(result)


def _error_records(entries: list[Entry]) -> list[dict[str, Any]]:
    """The journal's error records as ErrorAggregator.load takes them."""
    return [
        {"timestamp": row[1], "type": row[2], "message": row[3], "context": row[4]}
        for _, row in entries
        if row[0] == "error"
    ]


def _checked_actor(actor: str) -> str:
    if actor not in ACTORS:
        raise ValueError(f"actor must be one of {', '.join(ACTORS)}, not {actor!r}")
    return actor


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _is_bad_upstream_reply(exc: BaseException) -> bool:
    try:
        from jupiter.llm import LLMResponseError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, LLMResponseError)


def _retryable_chat_error(exc: BaseException) -> bool:
    """Retry upstream failures, not a malformed question or a missing API key."""
    try:
        from jupiter.llm import LLMConfigurationError, LLMRequestError
    except ImportError:  # pragma: no cover - the llm area is part of the package
        return True
    return not isinstance(exc, LLMRequestError | LLMConfigurationError)


_ERROR_PREFIXES = ("error:", "error -", "[error]", "an error occurred", "internal server error")


def _looks_like_error_reply(content: str) -> bool:
    """An empty reply, or one that is an error message rather than an answer."""
    text = content.strip().lower()
    return not text or text.startswith(_ERROR_PREFIXES)
