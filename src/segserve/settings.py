"""One place for every knob and limit. Read from `SEGSERVE_*` variables or a `.env` file.

Nothing else in segserve reads `os.environ`: build a `Settings()` (or pass keyword overrides,
`Settings(max_queue=2)`) and hand it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The 80 COCO object categories: vocabulary-mode's default list of concepts.
COCO_CATEGORIES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGSERVE_", env_file=".env", extra="ignore")

    # --- model -------------------------------------------------------------------------------
    model: str = "facebook/sam3"  # Hugging Face repo id or local checkpoint directory
    model_name: str = "sam3"  # the `model` value clients send; `GET /v1/models` lists it
    device: str | None = None  # "cuda", "mps", "cpu"; None picks cuda > mps > cpu
    dtype: str | None = None  # "bfloat16", "float16", "float32"; None: bf16 on CUDA, fp32 elsewhere
    # torch.compile the ViT layers (exact to ~1e-5; ~40-130 s once, at warm-up; needs a C++ compiler on
    # CPU). Off: no faster than eager on the 2-core CPU measured (bench/README.md)
    compile_vision: bool = False
    # Who runs the ViT: "auto" = OpenVINO for a full-size fp32 model on the CPU when `openvino` is
    # installed (exact to ~2e-5, ~15 % faster; converted once into openvino_cache_dir), else torch
    vision_backend: Literal["auto", "torch", "openvino"] = "auto"
    openvino_cache_dir: str = "~/.cache/segserve/openvino"  # converted vision encoders, one folder per model

    # --- inference defaults (a request may override them) -----------------------------------
    threshold: float = Field(0.5, ge=0.0, le=1.0)  # minimum confidence kept
    mask_threshold: float = Field(0.5, ge=0.0, le=1.0)  # mask probability cut-off
    max_segments: int = Field(100, ge=1, le=10_000)  # cap after sorting by confidence
    max_concepts: int = Field(16, ge=1, le=256)  # concepts per prompt
    max_concept_chars: int = Field(200, ge=1)  # characters per concept
    concept_batch: int = Field(16, ge=1)  # concepts per detector pass (bounds memory)
    everything_mode: Literal["grid", "vocabulary"] = "grid"  # what an empty prompt runs
    grid_points: int = Field(32, ge=1, le=128)  # grid mode: prompt points per side (32 -> 1024 points)
    grid_batch: int = Field(64, ge=1)  # grid mode: points decoded per tracker pass (bounds memory)
    pred_iou_thresh: float = Field(0.88, ge=0.0, le=1.0)  # grid mode: keep masks whose predicted IoU reaches this
    stability_thresh: float = Field(0.95, ge=0.0, le=1.0)  # grid mode: keep masks stable when the cut moves +-1 logit
    nms_thresh: float = Field(0.7, gt=0.0, le=1.0)  # everything mode: mask IoU at which the weaker mask is a duplicate
    min_region_area: int = Field(100, ge=0)  # grid mode: masks of fewer pixels (of the input image) are dropped
    vocabulary: str = ", ".join(COCO_CATEGORIES)  # vocabulary mode: comma-separated concepts (default COCO's 80)

    # --- caches ------------------------------------------------------------------------------
    cache_mb: int = Field(0, ge=0)  # vision-feature cache in MiB; 0 = room for ~8 images
    text_cache_size: int = Field(256, ge=0)  # concepts whose text features are kept

    # --- HTTP server -------------------------------------------------------------------------
    host: str = "127.0.0.1"  # bind address
    port: int = Field(8000, ge=0, le=65535)  # bind port
    api_keys: str = ""  # comma-separated bearer tokens accepted
    api_keys_file: Path | None = None  # file with one key per line (# comments allowed)
    api_key: str = ""  # the key `segserve segment --server` sends (SEGSERVE_API_KEY)
    no_auth: bool = False  # serve without keys (logs a warning); only for local use
    max_queue: int = Field(16, ge=1)  # requests waiting for the model beyond the running one
    workers: int = Field(1, ge=1)  # inference threads (1 is right for one GPU)
    request_timeout: float = Field(300.0, gt=0)  # seconds a request may wait + run -> 504
    retry_after: int = Field(5, ge=1)  # seconds advertised in Retry-After with a 429
    warmup: bool = True  # run one inference before /readyz says ready
    shutdown_grace: float = Field(30.0, ge=0)  # seconds running requests get after SIGTERM

    # --- image intake ------------------------------------------------------------------------
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1)  # upload / download size limit
    max_image_pixels: int = Field(50_000_000, ge=1)  # width x height limit, checked before decoding
    max_form_fields: int = Field(1000, ge=1)  # multipart/urlencoded fields per request
    max_field_bytes: int = Field(1024 * 1024, ge=1)  # bytes in one text field (data URIs go in JSON)
    max_json_bytes: int = Field(28 * 1024 * 1024, ge=1)  # JSON body limit (base64 of max_image_bytes)
    url_timeout: float = Field(10.0, gt=0)  # seconds for a whole URL fetch, redirects included
    url_max_redirects: int = Field(5, ge=0)  # redirects followed, each re-checked
    url_allow: str = ""  # comma-separated hosts or CIDRs exempt from the private-address ban

    def api_key_list(self) -> list[str]:
        """Keys from `api_keys` and `api_keys_file`, in that order, blanks and comments dropped."""
        keys = [k.strip() for k in self.api_keys.split(",") if k.strip()]
        if self.api_keys_file is not None:
            for line in Path(self.api_keys_file).read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    keys.append(line)
        return keys
