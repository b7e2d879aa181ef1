"""Prometheus metrics, read from the dashboard at scrape time (nothing on the request path).

Breaker metrics follow resilience4j's names with a ``jupiter_`` prefix:

* ``jupiter_circuitbreaker_state{name,state}``: 1 for the current state, 0 for the others;
* ``jupiter_circuitbreaker_calls_total{name,kind}``: kind ``successful``, ``failed``,
  ``ignored`` (excluded exceptions) and ``not_permitted``;
* ``jupiter_circuitbreaker_not_permitted_calls_total{name}``;
* ``jupiter_circuitbreaker_failure_rate{name}`` and ``..._slow_calls_total{name}``.

Plus ``jupiter_feature_enabled{name}``, ``jupiter_errors_window{type}``, socket and storage writer
gauges. Each app has its own registry, so several apps in one process (tests) do not clash.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .dashboard import JupiterDashboard

__all__ = ["DashboardCollector", "build_registry"]

_STATES = ("closed", "open", "half_open")


class DashboardCollector(Collector):
    """Reads breakers, flags, the aggregator and the writer of one dashboard."""

    def __init__(self, dashboard: JupiterDashboard) -> None:
        self._dashboard = dashboard

    def collect(self) -> Iterator[Metric]:
        dashboard = self._dashboard
        state = GaugeMetricFamily(
            "jupiter_circuitbreaker_state",
            "The states of the circuit breakers (1 for the current state)",
            labels=["name", "state"],
        )
        calls = CounterMetricFamily(
            "jupiter_circuitbreaker_calls",
            "Calls through each circuit breaker, by outcome",
            labels=["name", "kind"],
        )
        not_permitted = CounterMetricFamily(
            "jupiter_circuitbreaker_not_permitted_calls",
            "Calls refused because the breaker was open",
            labels=["name"],
        )
        slow = CounterMetricFamily(
            "jupiter_circuitbreaker_slow_calls", "Calls counted as slow", labels=["name"]
        )
        failure_rate = GaugeMetricFamily(
            "jupiter_circuitbreaker_failure_rate",
            "Failure rate of each breaker (0..1)",
            labels=["name"],
        )
        enabled = GaugeMetricFamily(
            "jupiter_feature_enabled", "Feature flags (1 enabled, 0 disabled)", labels=["name"]
        )
        for name, breaker in dashboard.breakers.items():
            current = breaker.state.value
            for candidate in _STATES:
                state.add_metric([name, candidate], 1.0 if candidate == current else 0.0)
            m = breaker.metrics
            calls.add_metric([name, "successful"], m.succeeded)
            calls.add_metric([name, "failed"], m.failed)
            calls.add_metric([name, "ignored"], m.ignored)
            calls.add_metric([name, "not_permitted"], m.rejected)
            not_permitted.add_metric([name], m.rejected)
            slow.add_metric([name], m.slow)
            failure_rate.add_metric([name], m.failure_rate)
            enabled.add_metric([name], 1.0 if dashboard.degradation.is_enabled(name) else 0.0)
        yield from (state, calls, not_permitted, slow, failure_rate, enabled)

        stats = dashboard.get_error_stats()
        errors = GaugeMetricFamily(
            "jupiter_errors_window", "Errors recorded in the aggregator's window", labels=["type"]
        )
        for error_type, count in stats["errors_by_type"].items():
            errors.add_metric([error_type], count)
        yield errors
        yield GaugeMetricFamily(
            "jupiter_websocket_connections", "Open sockets", value=dashboard.hub.count
        )
        sockets = dashboard.hub.stats
        for name, help_text, value in (
            (
                "dropped_broadcasts",
                "Broadcasts dropped for slow readers",
                sockets.dropped_broadcasts,
            ),
            (
                "slow_closes",
                "Sockets closed 1008 for not reading their replies",
                sockets.slow_closes,
            ),
            (
                "dropped_frames",
                "Incoming frames dropped by the flood guard",
                sockets.dropped_frames,
            ),
            ("flood_closes", "Sockets closed 1008 for a sustained flood", sockets.flood_closes),
        ):
            yield CounterMetricFamily(f"jupiter_websocket_{name}", help_text, value=value)
        writer = dashboard.writer.stats
        yield GaugeMetricFamily(
            "jupiter_storage_pending_rows", "Rows waiting for the database", value=writer.pending
        )
        yield CounterMetricFamily(
            "jupiter_storage_written_rows", "Rows written to the database", value=writer.written
        )
        yield CounterMetricFamily(
            "jupiter_storage_dropped_rows",
            "Rows dropped (queue overflow, or refused by the database for their content)",
            value=writer.dropped,
        )
        yield CounterMetricFamily(
            "jupiter_storage_rejected_rows",
            "Rows the database refused for their content (logged by error type, then dropped)",
            value=writer.rejected,
        )
        journal = dashboard.writer.journal
        if journal is not None:
            journal_stats = journal.stats
            yield GaugeMetricFamily(
                "jupiter_journal_bytes",
                "Size of the durable journal's segments",
                value=journal_stats.bytes,
            )
            yield CounterMetricFamily(
                "jupiter_journal_written_records",
                "Records written to the journal before being acknowledged",
                value=journal_stats.written,
            )
            yield CounterMetricFamily(
                "jupiter_journal_overflow_records",
                "Records kept in memory only because the journal was full (database down)",
                value=journal_stats.overflow,
            )
            yield CounterMetricFamily(
                "jupiter_journal_write_error_records",
                "Records kept in memory only because a journal write failed (e.g. disk full)",
                value=journal_stats.write_errors,
            )
            yield CounterMetricFamily(
                "jupiter_journal_corrupt_frames",
                "Torn or corrupt journal frames skipped at start (a kill during a write)",
                value=journal_stats.corrupt,
            )


def build_registry(dashboard: JupiterDashboard) -> CollectorRegistry:
    """A registry of this dashboard's metrics only."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DashboardCollector(dashboard))
    return registry
