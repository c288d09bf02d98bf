"""What a person watching `segserve annotate` sees: a rich progress bar while it runs (done/total,
images/s, ETA, failures) and a final table (images, instances per concept, failures by reason,
wall time). `quiet` shows neither; the summary is still returned to the caller.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Summary:
    """The outcome of a run (or of the journal, for --export-only)."""

    total: int = 0
    done: int = 0
    failed: int = 0
    pending: int = 0
    instances: Counter[str] = field(default_factory=Counter)
    failures_by_reason: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (key, code, message)
    processed: int = 0  # images this run worked on
    wall_s: float = 0.0
    interrupted: bool = False
    exports: dict[str, str] = field(default_factory=dict)  # format -> path

    @property
    def ok(self) -> bool:
        """Every listed image has its result: what exit status 0 means."""
        return self.failed == 0 and self.pending == 0 and not self.interrupted


class Progress:
    """The live bar; a no-op when quiet or when stderr is no terminal (logs stay readable)."""

    def __init__(self, total: int, done: int, *, quiet: bool) -> None:
        self._bar: Any = None
        self.failed = 0
        if quiet:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        console = Console(file=sys.stderr)
        self._bar = RichProgress(
            TextColumn("annotating"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} img/s"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            console=console,
            disable=not console.is_terminal,
        )
        self._task = self._bar.add_task("annotate", total=total, completed=done, failed=0, rate="-")
        self._bar.start()

    def advance(self, failed: bool = False) -> None:
        if self._bar is None:
            return
        self.failed += failed
        task = self._bar.tasks[0]
        speed = task.speed  # rich's own moving estimate over the recent completions
        self._bar.update(self._task, advance=1, failed=self.failed, rate=f"{speed:.2f}" if speed else "-")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def print_summary(summary: Summary, *, file: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stderr, width=120)
    table = Table(title="segserve annotate", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("images", str(summary.total))
    table.add_row("annotated", str(summary.done))
    table.add_row("failed", str(summary.failed))
    if summary.pending:
        table.add_row("not yet done", str(summary.pending))
    for label, n in sorted(summary.instances.items()):
        table.add_row(f"instances: {label}", str(n))
    for reason, n in summary.failures_by_reason.most_common():
        table.add_row(f"failed: {reason}", str(n))
    rate = summary.processed / summary.wall_s if summary.wall_s > 0 else 0.0
    table.add_row("wall time", f"{summary.wall_s:.1f} s ({summary.processed} images this run, {rate:.2f}/s)")
    for fmt, path in summary.exports.items():
        table.add_row(f"export: {fmt}", path)
    console.print(table)
    for key, code, message in summary.failures[:10]:
        console.print(f"[red]failed[/red] {key}: {code}: {message}", highlight=False)
    if len(summary.failures) > 10:
        console.print(f"... and {len(summary.failures) - 10} more (listed in the journal); --retry-failed retries them")
    if summary.interrupted:
        console.print("Interrupted: run the same command again to continue.")
