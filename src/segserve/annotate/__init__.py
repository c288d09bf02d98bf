"""Annotate a dataset: every image of SOURCE segmented, journaled in OUT, exported as training data.

>>> from segserve.annotate import annotate
>>> summary = annotate("photos/", "out/", "person, helmet", formats=["coco", "yolo"])  # doctest: +SKIP
>>> summary.ok, summary.exports["coco"]                                                # doctest: +SKIP
(True, 'out/coco.json')

The flow (one module each): sources.py (SOURCE -> images) -> runner.py (local engine), remote.py
(--server) or ray_runner.py (--ray) -> journal.py (SQLite in OUT, resumable) -> exporters/ (COCO,
YOLO, Label Studio) -> progress.py (bar and final table). `cli.py` is `segserve annotate`.
Importing this package loads neither torch nor Ray: the backends import them when they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segserve.annotate.progress import Summary
    from segserve.settings import Settings

__all__ = ["annotate", "export"]


def annotate(
    source: str | Path,
    out: str | Path,
    prompt: str = "",
    *,
    formats: Sequence[str] = ("coco",),
    settings: Settings | None = None,
    model: str | None = None,
    device: str | None = None,
    segmenter: Any = None,
    server: str | None = None,
    api_key: str | None = None,
    ray: bool | str = False,
    restart: bool = False,
    retry_failed: bool = False,
    quiet: bool = True,
    coco_masks: str = "rle",
    yolo_images: str = "link",
    **options: Any,
) -> Summary:
    """Segment every image of `source` (folder, glob or text list of paths/URLs) into `out`.

    The engine is `segmenter` if given, else a running segserve at `server`, else Ray Data actors
    (`ray=True` local, or a cluster address), else the model `model` (default `settings.model`)
    loaded here. `options` are `SegmentOptions` (threshold, mask_threshold, max_segments,
    everything_mode). Re-running continues where a previous run stopped; a run with another
    prompt, model or options is refused (`AnnotateRunMismatchError`) unless `restart`.
    Returns the `Summary` (`.ok` is True when every image succeeded).
    """
    from segserve.annotate import runner
    from segserve.settings import Settings
    from segserve.types import SegmentRequest

    settings = settings or Settings.defaults()
    changes = {k: v for k, v in {"model": model, "device": device}.items() if v is not None}
    if changes:
        settings = settings.replace(**changes)
    for name, allowed in (("coco_masks", ("rle", "polygon")), ("yolo_images", ("link", "copy"))):
        value = locals()[name]
        if value not in allowed:
            from segserve.errors import InvalidParameterError

            raise InvalidParameterError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.", param=name)
    request = SegmentRequest.resolve(settings, prompt=prompt, **{**options, "mask_format": "rle"})
    backend: Any
    if server:
        from segserve.annotate.remote import RemoteBackend

        backend = RemoteBackend(server, api_key or settings.api_key, prompt, request, settings)
    elif ray:
        from segserve.annotate.ray_runner import RayBackend

        backend = RayBackend(None if ray is True else str(ray), prompt, request, settings)
    else:
        backend = runner.LocalBackend(segmenter, request, settings)
    return runner.run(
        backend,
        source,
        out,
        request,
        settings,
        formats=formats,
        restart=restart,
        retry_failed=retry_failed,
        quiet=quiet,
        export_options={
            "coco_masks": coco_masks,
            "yolo_images": yolo_images,
            "labelstudio_prefix": settings.annotate_labelstudio_prefix,
        },
    )


def export(out: str | Path, formats: Sequence[str] | None = None, *, quiet: bool = True) -> Summary:
    """Write OUT's exports again from its journal (`segserve annotate --export-only OUT`)."""
    from segserve.annotate.journal import Journal
    from segserve.annotate.runner import export as export_journal

    with Journal.existing(out) as journal:
        return export_journal(journal, formats=formats, quiet=quiet)
