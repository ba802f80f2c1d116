"""Counters and gauges rendered in the Prometheus text format for ``GET /metrics``."""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Callable


class Counter:
    """A monotonically increasing count, optionally split by one label."""

    def __init__(self, name: str, help_text: str, label: str | None = None) -> None:
        self.name = name
        self.help = help_text
        self.label = label
        self._values: _Tally[str] = _Tally()

    def inc(self, amount: int = 1, label_value: str = "") -> None:
        self._values[label_value] += amount

    def value(self, label_value: str = "") -> int:
        return self._values[label_value]

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if self.label is None:
            lines.append(f"{self.name} {self._values['']}")
        else:
            for value, count in sorted(self._values.items()):
                lines.append(f'{self.name}{{{self.label}="{_escape(value)}"}} {count}')
        return lines


class Gauge:
    """A value read when scraped."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.name = name
        self.help = help_text
        self._read = read

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {self._read():g}",
        ]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Every metric the server exports. Gauges are attached by the parts that own the values."""

    def __init__(self) -> None:
        self.received = Counter("chatapp_messages_received_total", "Chat messages accepted")
        self.stored = Counter("chatapp_messages_stored_total", "Chat messages committed")
        self.duplicates = Counter(
            "chatapp_messages_duplicate_total", "Retried messages answered with the original ack"
        )
        self.batches = Counter("chatapp_write_batches_total", "Commits by the writer")
        self.errors = Counter("chatapp_errors_total", "Error frames sent, by code", "code")
        self.slow_consumers = Counter(
            "chatapp_slow_consumers_total", "Clients disconnected for reading too slowly"
        )
        self.gauges: list[Gauge] = []

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges.append(Gauge(name, help_text, read))

    def render(self) -> str:
        lines: list[str] = []
        for counter in (
            self.received,
            self.stored,
            self.duplicates,
            self.batches,
            self.errors,
            self.slow_consumers,
        ):
            lines.extend(counter.render())
        for gauge in self.gauges:
            lines.extend(gauge.render())
        return "\n".join(lines) + "\n"
