"""Medians, ratios and the markdown table of a benchmark session; pure, no I/O.

A session measures each figure several times on two sides, the *subject*
(chatapp as built) and its *reference* (the tutorial's Node server, an empty
database, raw sqlite3...). Each side of each run is one ``Record``; the
table shows every run, the median of each side, and subject / reference.
Failed runs carry ``None`` and are left out of the medians.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Side = Literal["subject", "reference"]
MISSING = "n/a"


@dataclass(frozen=True)
class Measure:
    """One row of a figure: a metric key, how to label it, and the goal it is held to."""

    key: str
    label: str
    goal: str = ""
    #: False when only the subject has this metric (e.g. the server's CPU per message).
    compare: bool = True


@dataclass(frozen=True)
class Figure:
    """How a figure appears in the table: its sides' names and its rows."""

    name: str
    subject: str
    reference: str
    measures: tuple[Measure, ...]


@dataclass(frozen=True)
class Record:
    """What one side of one run measured."""

    figure: str
    side: Side
    run: int
    metrics: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """One table row: a measure's runs on both sides."""

    figure: str
    measure: str
    subject: str
    reference: str
    subject_values: tuple[float | None, ...]
    reference_values: tuple[float | None, ...]
    goal: str = ""

    @property
    def subject_median(self) -> float | None:
        return median(self.subject_values)

    @property
    def reference_median(self) -> float | None:
        return median(self.reference_values)

    @property
    def ratio(self) -> float | None:
        return ratio(self.subject_median, self.reference_median)


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None (mean of the middle two for an even count)."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    middle = len(present) // 2
    if len(present) % 2:
        return present[middle]
    return (present[middle - 1] + present[middle]) / 2


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0-100), rounded to 0.01; None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[min(rank, len(ordered)) - 1], 2)


def ratio(subject: float | None, reference: float | None) -> float | None:
    """subject / reference, or None when either is missing or the reference is zero."""
    if subject is None or reference is None or reference == 0:
        return None
    return subject / reference


def comparisons(figures: Iterable[Figure], records: Sequence[Record]) -> list[Comparison]:
    """The table's rows, in figure and measure order; runs in run order."""
    rows = []
    for figure in figures:
        mine = sorted((r for r in records if r.figure == figure.name), key=lambda r: r.run)
        if not mine:
            continue
        subjects = [r for r in mine if r.side == "subject"]
        references = [r for r in mine if r.side == "reference"]
        for measure in figure.measures:
            key = measure.key
            rows.append(
                Comparison(
                    figure=figure.name,
                    measure=measure.label,
                    subject=figure.subject,
                    reference=figure.reference if measure.compare else "",
                    subject_values=tuple(r.metrics.get(key) for r in subjects),
                    reference_values=(
                        tuple(r.metrics.get(key) for r in references) if measure.compare else ()
                    ),
                    goal=measure.goal,
                )
            )
    return rows


def number(value: float | None) -> str:
    """A figure with as many digits as a noisy benchmark deserves."""
    if value is None:
        return MISSING
    size = abs(value)
    if size >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown_table(rows: Iterable[Comparison]) -> str:
    """Every run, the medians, and the ratio of medians, as a markdown table."""
    lines = [
        "| figure | measure | subject | runs | median | reference | runs | median | ratio | goal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        compared = bool(row.reference)
        cells = [
            row.figure,
            row.measure,
            row.subject,
            ", ".join(number(v) for v in row.subject_values),
            f"**{number(row.subject_median)}**",
            row.reference or "—",
            ", ".join(number(v) for v in row.reference_values) if compared else "—",
            number(row.reference_median) if compared else "—",
            f"{row.ratio:.2f}x" if row.ratio is not None else ("—" if not compared else MISSING),
            row.goal or "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
