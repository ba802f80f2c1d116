"""Every metric the server exports at ``GET /metrics`` (Prometheus text format).

Each server gets its own registry, so several can live in one process (tests)
without their counts mixing.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.connections = Gauge(
            "chatapp_connections", "Open WebSocket connections", registry=registry
        )
        self.received = Counter(
            "chatapp_messages_received", "Chat messages accepted from clients", registry=registry
        )
        self.stored = Counter(
            "chatapp_messages_stored", "Chat messages committed", registry=registry
        )
        self.duplicates = Counter(
            "chatapp_messages_duplicate",
            "Retried messages answered with the original ack",
            registry=registry,
        )
        self.delivered = Counter(
            "chatapp_messages_delivered",
            "Messages written to members' sockets (one per member per message)",
            registry=registry,
        )
        self.errors = Counter(
            "chatapp_errors", "Error frames sent, by code", ["code"], registry=registry
        )
        self.rate_limited = Counter(
            "chatapp_rate_limited_frames", "Frames dropped by the rate limit", registry=registry
        )
        self.slow_consumers = Counter(
            "chatapp_slow_consumers",
            "Clients disconnected because their unsent backlog passed the bound",
            registry=registry,
        )
        self.lagging = Counter(
            "chatapp_lagging_clients",
            "Times a client's backlog was full, so it got live traffic from the database later",
            registry=registry,
        )
        self.gap_fills = Counter(
            "chatapp_gap_fills",
            "Reads of messages the broker did not bring (late or lost publishes, an outage)",
            registry=registry,
        )
        self.broker_resyncs = Counter(
            "chatapp_broker_resyncs",
            "Times the broker reconnected, so every room was checked against the database",
            registry=registry,
        )
        self.batch_size = Histogram(
            "chatapp_write_batch_size",
            "Messages per commit of the group-commit writer",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "chatapp_commit_seconds",
            "Time to store one batch (transaction and commit)",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.fanout_seconds = Histogram(
            "chatapp_fanout_seconds",
            "Time to hand one delivered batch to every member socket of this process",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def count_connections(self, read: Callable[[], int]) -> None:
        self.connections.set_function(read)

    def observe_commit(self, size: int, duplicates: int, seconds: float) -> None:
        """A batch committed: ``size`` messages, ``duplicates`` of them retries of stored ones."""
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)
        self.stored.inc(size - duplicates)  # a retry is published again, not stored again
        if duplicates:
            self.duplicates.inc(duplicates)

    def render(self) -> bytes:
        return generate_latest(self.registry)
