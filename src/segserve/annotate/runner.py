"""`annotate()`: SOURCE -> journal -> exports, whichever backend does the segmenting.

    listing  = sources.list_images(SOURCE)          stable order, keys relative to SOURCE
    journal  = Journal(OUT).claim(fingerprint)      refuses another run's OUT unless restart
    backend  = Local | Remote (--server) | Ray      yields (image, result or error) as they finish
    each outcome is committed to the journal at once; then the exports are written from it.

The local backend decodes ahead on a small thread pool (`annotate_prefetch` threads, at most
`annotate_queue` decoded images waiting) so the model never waits on I/O and memory stays flat.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from segserve.annotate.journal import Journal
from segserve.annotate.progress import Progress, Summary, print_summary
from segserve.annotate.sources import ImageRef, list_images, load_image
from segserve.errors import InvalidParameterError, SegserveError
from segserve.settings import Settings
from segserve.types import SegmentationResult, SegmentRequest

Outcome = SegmentationResult | SegserveError


class Backend(Protocol):
    name: str  # what the journal's fingerprint records as the model

    def run(self, refs: Sequence[ImageRef], stop: threading.Event) -> Iterator[tuple[ImageRef, Outcome]]:
        """Segment `refs`, yielding each outcome as it is known; once `stop` is set, start no new image."""
        ...


def failure(exc: BaseException) -> SegserveError:
    """Any exception an image raised, as a SegserveError with a code to group failures by."""
    if isinstance(exc, SegserveError):
        return exc
    return SegserveError(f"{type(exc).__name__}: {exc}")


class LocalBackend:
    """The engine in this process: decode on `annotate_prefetch` threads, segment on this one.
    With no `segmenter`, `settings.model` is loaded when there is work (not before the journal
    has accepted the run: a refused re-run costs no model load)."""

    def __init__(self, segmenter: Any, request: SegmentRequest, settings: Settings) -> None:
        self.segmenter, self.request, self.settings = segmenter, request, settings
        self.name = str(getattr(segmenter, "model_id", settings.model))

    def run(self, refs: Sequence[ImageRef], stop: threading.Event) -> Iterator[tuple[ImageRef, Outcome]]:
        if refs and self.segmenter is None:
            from segserve.engine.sam3 import Sam3Segmenter

            self.segmenter = Sam3Segmenter.from_settings(self.settings)
        todo = iter(refs)
        waiting: deque[tuple[ImageRef, Future]] = deque()
        with ThreadPoolExecutor(self.settings.annotate_prefetch, thread_name_prefix="annotate-decode") as pool:
            try:
                while True:
                    while len(waiting) < self.settings.annotate_queue and not stop.is_set():
                        ref = next(todo, None)
                        if ref is None:
                            break
                        waiting.append((ref, pool.submit(load_image, ref, self.settings)))
                    if not waiting or stop.is_set():
                        return
                    ref, future = waiting.popleft()
                    try:
                        image = future.result()
                        outcome: Outcome = self.segmenter.segment(image, self.request.concepts, self.request.options)
                    except Exception as exc:  # one bad image never stops the run: it is journaled
                        outcome = failure(exc)
                    image = None  # drop the pixels before the next decode lands
                    yield ref, outcome
            finally:
                for _, future in waiting:
                    future.cancel()


def fingerprint(request: SegmentRequest, model: str) -> dict[str, Any]:
    """What makes two runs' results interchangeable: concepts, model and options."""
    options = request.options.model_dump()
    options.pop("mask_format")  # annotate always journals RLE; the exports choose their own encoding
    return {
        "prompt": [[c.label, c.text, [list(b) for b in getattr(c, "boxes", ())]] for c in request.concepts],
        "model": model,
        **options,
    }


def categories(request: SegmentRequest, settings: Settings) -> list[str]:
    """The exports' classes, in a stable order: the prompt's concepts, or everything-mode's labels."""
    if request.concepts:
        names = [c.label for c in request.concepts]
    elif request.options.everything_mode == "grid":
        names = ["object"]
    else:
        from segserve.prompts import parse_prompt

        names = [c.label for c in parse_prompt(settings.vocabulary, max_concepts=1_000_000)]
    return list(dict.fromkeys(names))


@contextlib.contextmanager
def _stop_on_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks for a clean stop after the images in flight; a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(
    backend: Backend,
    source: str | Path,
    out: str | Path,
    request: SegmentRequest,
    settings: Settings,
    *,
    formats: Sequence[str] = ("coco",),
    restart: bool = False,
    retry_failed: bool = False,
    quiet: bool = False,
    export_options: dict[str, Any] | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Annotate SOURCE into OUT with `backend`, then write the exports. See `segserve.annotate.annotate`."""
    started = time.monotonic()
    listing = list_images(source)
    stop = stop or threading.Event()
    with Journal(out) as journal:
        journal.claim(fingerprint(request, backend.name), restart=restart)
        journal.sync_listing([ref.key for ref in listing.images], [ref.location for ref in listing.images])
        journal.set_meta(
            "run",
            {
                "source": str(listing.root),
                "categories": categories(request, settings),
                "model": backend.name,
                "formats": list(formats),
                **(export_options or {}),
            },
        )
        by_key = {ref.key: ref for ref in listing.images}
        todo = [by_key[k] for k in journal.todo(retry_failed=retry_failed)]
        progress = Progress(len(listing.images), len(listing.images) - len(todo), quiet=quiet)
        processed = 0
        try:
            with _stop_on_ctrl_c(stop):
                for ref, outcome in backend.run(todo, stop):
                    if isinstance(outcome, SegmentationResult):
                        journal.record_done(ref.key, outcome)
                    else:
                        journal.record_failed(ref.key, outcome.code, outcome.message)
                    processed += 1
                    progress.advance(failed=not isinstance(outcome, SegmentationResult))
        finally:
            progress.stop()
        summary = export(journal, formats=formats, quiet=True)
    summary.processed, summary.wall_s = processed, time.monotonic() - started
    summary.interrupted = stop.is_set() and summary.pending > 0
    if not quiet:
        print_summary(summary)
    return summary


def export(journal: Journal, *, formats: Sequence[str] | None = None, quiet: bool = False) -> Summary:
    """Write the exports from the journal (what --export-only runs) and summarise it."""
    from segserve.annotate.exporters import FORMATS

    meta = journal.meta("run") or {}
    formats = list(formats or meta.get("formats") or ["coco"])
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        choices = ", ".join(FORMATS)
        raise InvalidParameterError(f"unknown --format {unknown[0]!r}; choose from {choices}.", param="format")
    names = list(meta.get("categories", []))
    names += sorted(set(journal.labels()) - set(names))  # a label no category foresaw still gets one
    summary = Summary()
    counts = journal.counts()
    summary.done, summary.failed, summary.pending = counts["done"], counts["failed"], counts["pending"]
    summary.total = sum(counts.values())
    summary.failures = journal.failures()
    summary.failures_by_reason = Counter(code for _, code, _ in summary.failures)
    for record in journal.done():
        summary.instances.update(record.result.labels)
    out = journal.out
    if "coco" in formats:
        from segserve.annotate.exporters.coco import write_coco

        path = write_coco(out / "coco.json", journal.done(), names, masks=meta.get("coco_masks", "rle"))
        summary.exports["coco"] = str(path)
    if "yolo" in formats:
        from segserve.annotate.exporters.yolo import write_yolo

        path = write_yolo(out / "yolo", journal.done(), names, images=meta.get("yolo_images", "link"))
        summary.exports["yolo"] = str(path)
    if "labelstudio" in formats:
        from segserve.annotate.exporters.labelstudio import write_labelstudio

        path = write_labelstudio(
            out / "labelstudio",
            journal.done(),
            names,
            model_version=f"segserve {meta.get('model', '')}".strip(),
            prefix=meta.get("labelstudio_prefix", Settings.defaults().annotate_labelstudio_prefix),
        )
        summary.exports["labelstudio"] = str(path)
    if not quiet:
        print_summary(summary)
    return summary
