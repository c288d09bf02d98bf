"""`--ray [ADDRESS]`: the images still to do become a Ray Dataset, segmented by `map_batches` on
actors that each load the model once; results stream back to this driver, which journals them
exactly as the local runner does, so resume and exports do not depend on where images ran.

Every worker reads the images itself: on a real cluster SOURCE must be on storage all nodes see
(a shared file system at the same path, or URLs). Actors ask for one GPU each when the cluster has
GPUs; `annotate_ray_actors` of them run (an `ActorPoolStrategy` of that size), each taking
`annotate_ray_batch_size` images per call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from segserve.annotate.journal import result_from_json, result_to_json
from segserve.annotate.runner import Outcome, failure
from segserve.annotate.sources import ImageRef, load_image
from segserve.errors import ERRORS_BY_CODE, SegserveError
from segserve.settings import Settings
from segserve.types import SegmentRequest

_COLUMNS = ("key", "ok", "width", "height", "result", "code", "message")


class SegmentActor:
    """One model per actor, loaded in `__init__`; `__call__` segments a batch of image references."""

    def __init__(self, settings: dict[str, Any], prompt: str, options: dict[str, Any]) -> None:
        from segserve.engine.sam3 import Sam3Segmenter

        self.settings = Settings.defaults().replace(**settings)
        self.request = SegmentRequest.resolve(self.settings, prompt=prompt, **options)
        self.segmenter = Sam3Segmenter.from_settings(self.settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        for key, location in zip(batch["key"], batch["location"]):
            ref = ImageRef(str(key), str(location))
            try:
                image = load_image(ref, self.settings)
                result = self.segmenter.segment(image, self.request.concepts, self.request.options)
                values = (ref.key, True, result.image_size[1], result.image_size[0], result_to_json(result), "", "")
            except Exception as exc:  # journaled as the image's failure, like the local runner does
                err = failure(exc)
                values = (ref.key, False, 0, 0, "", err.code, err.message)
            for name, value in zip(_COLUMNS, values):
                rows[name].append(value)
        return {name: np.asarray(values, dtype=object) for name, values in rows.items()}


class RayBackend:
    def __init__(self, address: str | None, prompt: str, request: SegmentRequest, settings: Settings) -> None:
        self.address, self.prompt, self.request, self.settings = address, prompt, request, settings
        self.name = settings.model

    def run(self, refs: Sequence[ImageRef], stop: threading.Event) -> Iterator[tuple[ImageRef, Outcome]]:
        if not refs:
            return
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours is the one bar
        by_key = {ref.key: ref for ref in refs}
        options = self.request.options.model_dump()
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        dataset = ray.data.from_items([{"key": r.key, "location": r.location} for r in refs]).map_batches(
            SegmentActor,
            fn_constructor_kwargs={
                "settings": self.settings.model_dump(mode="json"),
                "prompt": self.prompt,
                "options": options,
            },
            batch_size=self.settings.annotate_ray_batch_size,
            compute=ray.data.ActorPoolStrategy(size=self.settings.annotate_ray_actors),
            num_gpus=gpus,
            batch_format="numpy",
        )
        for row in dataset.iter_rows():
            ref = by_key[str(row["key"])]
            if row["ok"]:
                yield ref, result_from_json(str(row["result"]), int(row["height"]), int(row["width"]))
            else:
                cls = ERRORS_BY_CODE.get(str(row["code"]), SegserveError)
                err = cls(str(row["message"]))
                err.code = str(row["code"])  # type: ignore[misc]
                yield ref, err
            if stop.is_set():
                return
