"""The OpenVINO vision backend: exact against torch on the tiny model, and converted once per model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from process_memory import resident_kb
from segserve.engine import openvino
from segserve.engine.detector import TextDetector
from segserve.engine.sam3 import Sam3Segmenter
from segserve.types import SegmentOptions

# The [cpu] extra is optional: without it these skip (the reason is in pytest's summary) and the
# tests below that patch `available` check what a user without it gets. The dev install has it.
needs_openvino = pytest.mark.skipif(not openvino.available(), reason="needs the [cpu] extra (OpenVINO)")


def _no_conversion_here(*args, **kwargs):
    raise AssertionError("the conversion must run in a child process, not in the server")


@pytest.fixture(scope="module")
def ov_segmenter(tiny_model_path, tmp_path_factory):
    cache = tmp_path_factory.mktemp("openvino-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(openvino, "convert", _no_conversion_here)  # the child process is another interpreter
        seg = Sam3Segmenter.from_pretrained(
            tiny_model_path, device="cpu", vision_backend="openvino", openvino_cache_dir=cache, cache=False
        )
    return seg, cache


@needs_openvino
def test_vision_features_within_1e4_of_torch(ov_segmenter, tiny_segmenter, rgb_image):
    seg, _ = ov_segmenter
    assert seg.vision_backend == "openvino" and tiny_segmenter.vision_backend == "torch"
    with torch.inference_mode():
        ours = seg.encode_image(rgb_image)
        tiny_segmenter.vision_cache.clear()
        ref = tiny_segmenter.encode_image(rgb_image)
    pairs = [(ours.backbone, ref.backbone), *zip(ours.fpn_hidden_states, ref.fpn_hidden_states)]
    pairs += list(zip(ours.fpn_position_encoding, ref.fpn_position_encoding))
    assert len(pairs) == 1 + 4 + 4
    for got, want in pairs:
        assert got.shape == want.shape and got.dtype == want.dtype
        assert float((got - want).abs().max()) < 1e-4


@needs_openvino
def test_segments_match_the_torch_backend(ov_segmenter, tiny_segmenter, rgb_image):
    seg, _ = ov_segmenter
    options = SegmentOptions(threshold=0.25, max_segments=1000)
    ours = seg.segment(rgb_image, ["cat", "dog"], options)
    ref = tiny_segmenter.segment(rgb_image, ["cat", "dog"], options)
    assert ours.labels == ref.labels
    np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-4)
    # The tiny random model's mask logits sit within ~1e-3 of the cut, so a 1e-6 feature difference
    # may flip a few border pixels; on real weights masks are far from the cut.
    assert np.mean(ours.masks != ref.masks) < 1e-3


@needs_openvino
def test_conversion_sends_no_telemetry(ov_segmenter):
    import openvino.tools.ovc.telemetry_utils as ovc_telemetry

    assert sys.modules["openvino_telemetry"] is None
    assert ovc_telemetry.tm.__name__ == "openvino.tools.ovc.telemetry_stub"  # the converter's no-op


@needs_openvino
def test_converted_model_is_cached_on_disk_and_reused(ov_segmenter, tiny_model_path, monkeypatch):
    _, cache = ov_segmenter
    saved = list(cache.glob("*/vision_encoder.xml"))
    assert len(saved) == 1 and saved[0].with_suffix(".bin").is_file()
    import openvino as ov

    def no_conversion(*args, **kwargs):
        raise AssertionError("a cached model must not be converted again")

    monkeypatch.setattr(ov, "convert_model", no_conversion)
    monkeypatch.setattr(openvino, "convert_in_child", no_conversion)
    again = Sam3Segmenter.from_pretrained(
        tiny_model_path, device="cpu", vision_backend="openvino", openvino_cache_dir=cache
    )
    assert again.vision_backend == "openvino"


@pytest.mark.parametrize(
    ("backend", "device", "dtype", "expected"),
    [
        ("torch", "cpu", torch.float32, False),  # asked for torch
        ("auto", "cpu", torch.float32, False),  # the tiny model is too small to be worth converting
        pytest.param("openvino", "cpu", torch.float32, True, marks=needs_openvino),  # asked for, and possible
    ],
)
def test_backend_resolution(tiny_segmenter, backend, device, dtype, expected):
    vision = tiny_segmenter.model.vision_encoder
    assert openvino.should_use(backend, vision, torch.device(device), dtype) is expected


@pytest.mark.parametrize(
    ("backend", "dtype", "match"),
    [
        ("openvino", torch.bfloat16, "float32 only"),  # not exact in bf16
        ("onnx", torch.float32, "must be 'auto', 'torch' or 'openvino'"),  # unknown name
    ],
)
def test_backend_refusals_say_what_to_do(tiny_segmenter, backend, dtype, match):
    with pytest.raises(ValueError, match=match):
        openvino.should_use(backend, tiny_segmenter.model.vision_encoder, torch.device("cpu"), dtype)


@needs_openvino
def test_auto_picks_openvino_for_a_full_size_encoder(tiny_segmenter, monkeypatch):
    monkeypatch.setattr(openvino, "MIN_PARAMETERS", 1)  # stands in for the 450M-parameter ViT
    vision = tiny_segmenter.model.vision_encoder
    assert openvino.should_use("auto", vision, torch.device("cpu"), torch.float32)
    assert not openvino.should_use("auto", vision, torch.device("cpu"), torch.bfloat16)


def _corrupt_bin(folder):
    (folder / "vision_encoder.bin").write_bytes((folder / "vision_encoder.bin").read_bytes()[:1000])  # truncated


def _corrupt_xml(folder):
    (folder / "vision_encoder.xml").write_text("<net><layers>")  # cut mid-document


def _flip_a_weight(folder):
    data = bytearray((folder / "vision_encoder.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF  # readable, compiles, but no longer the weights it was made from
    (folder / "vision_encoder.bin").write_bytes(bytes(data))


@pytest.mark.parametrize("corrupt", [_corrupt_bin, _corrupt_xml, _flip_a_weight])
@needs_openvino
def test_a_corrupt_cache_is_converted_again(ov_segmenter, tiny_model_path, tmp_path, rgb_image, caplog, corrupt):
    import shutil

    _, good = ov_segmenter
    cache = tmp_path / "cache"
    shutil.copytree(good, cache)
    folder = next(cache.glob("*/vision_encoder.xml")).parent
    assert (folder / "vision_encoder.sha256").is_file()
    corrupt(folder)
    seg = Sam3Segmenter.from_pretrained(
        tiny_model_path, device="cpu", vision_backend="openvino", openvino_cache_dir=cache, cache=False
    )
    assert seg.vision_backend == "openvino"
    assert any("unusable" in r.getMessage() for r in caplog.records)
    reference, _ = ov_segmenter
    with torch.inference_mode():
        torch.testing.assert_close(seg.encode_image(rgb_image).backbone, reference.encode_image(rgb_image).backbone)
    # The rewritten cache is whole again: the next start reads it without converting.
    assert (
        openvino._digest(folder / "vision_encoder.xml", folder / "vision_encoder.bin")
        == (folder / "vision_encoder.sha256").read_text()
    )


@needs_openvino
def test_auto_falls_back_to_torch_when_openvino_cannot_build(tiny_model_path, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no space left on device")

    monkeypatch.setattr(openvino, "MIN_PARAMETERS", 1)  # "auto" would pick OpenVINO
    monkeypatch.setattr(openvino, "OpenVINOVisionEncoder", broken)
    # The detector on torch and the cache in tmp_path: nothing converted into the user's ~/.cache.
    seg = Sam3Segmenter.from_pretrained(
        tiny_model_path, device="cpu", vision_backend="auto", detector_backend="torch", openvino_cache_dir=tmp_path
    )
    assert seg.vision_backend == "torch"
    assert any("runs on torch" in r.getMessage() for r in caplog.records)


@needs_openvino
def test_the_torch_vit_is_dropped_once_openvino_runs_it(ov_segmenter, tiny_segmenter, rgb_image):
    seg, _ = ov_segmenter
    assert all(p.is_meta for p in seg.model.vision_encoder.parameters())  # one copy of the ViT: OpenVINO's
    assert not any(p.is_meta for p in tiny_segmenter.model.vision_encoder.parameters())
    # The tracker shares the (now weightless) ViT module and reads only its output: grid mode still runs.
    options = SegmentOptions(threshold=0.0, max_segments=5, everything_mode="grid")
    ours = seg.segment(rgb_image, [], options)
    ref = tiny_segmenter.segment(rgb_image, [], options)
    assert len(ours) == len(ref)
    np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-3)


@needs_openvino
def test_a_model_unlike_its_checkpoint_is_converted_in_process(tiny_model_path, tmp_path, caplog):
    from transformers import Sam3Model, Sam3Processor

    model = Sam3Model.from_pretrained(tiny_model_path).eval()
    with torch.no_grad():
        next(model.vision_encoder.parameters()).add_(0.01)  # no longer the weights on disk
    processor = Sam3Processor.from_pretrained(tiny_model_path)
    seg = Sam3Segmenter(
        model, processor, model_id=str(tiny_model_path), vision_backend="openvino", openvino_cache_dir=tmp_path
    )
    assert seg.vision_backend == "openvino"
    assert any("not the model in memory" in r.getMessage() for r in caplog.records)
    # A model handed in is the caller's: its torch weights stay.
    assert not any(p.is_meta for p in model.vision_encoder.parameters())
    with torch.inference_mode():
        got = seg.encode_image(np.zeros((32, 32, 3), np.uint8)).backbone
        want = model.get_vision_features(pixel_values=seg.preprocess(np.zeros((32, 32, 3), np.uint8)))
    assert float((got - want.last_hidden_state).abs().max()) < 1e-4  # converted from these weights


@needs_openvino
def test_auto_runs_torch_when_a_conversion_would_not_fit_in_memory(tiny_model_path, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(openvino, "MIN_PARAMETERS", 1)  # "auto" would pick OpenVINO
    monkeypatch.setattr(openvino, "enough_memory_to_convert", lambda module, part: (False, 3.2, 15.0))
    monkeypatch.setattr(openvino, "convert_in_child", _no_conversion_here)
    seg = Sam3Segmenter.from_pretrained(
        tiny_model_path, device="cpu", vision_backend="auto", openvino_cache_dir=tmp_path
    )
    assert (seg.vision_backend, seg.detector_backend) == ("torch", "torch")
    said = [r.getMessage() for r in caplog.records if "OpenVINO" in r.getMessage()]
    assert len(said) == 2  # one line per part
    for line, part in zip(said, ("vision encoder", "detector")):
        assert f"converting the {part} needs ~15 GiB" in line and "segserve convert" in line


def test_available_memory_is_read_from_the_system(tiny_segmenter):
    enough, have, need = openvino.enough_memory_to_convert(tiny_segmenter.model.vision_encoder)
    assert enough and have > 0.1  # this machine has more than 100 MiB free
    assert 0 < need < 0.01  # the tiny encoder: kilobytes


@needs_openvino
def test_convert_command_converts_once(tiny_model_path, tmp_path, capsys):
    from segserve.cli import main

    assert main(["convert", "--model", str(tiny_model_path), "--cache-dir", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[:2] for line in first] == [["vision", "converted"], ["detector", "converted"]]
    assert first[0].endswith("vision_encoder.xml") and first[1].endswith("detector.xml")
    assert main(["convert", "--model", str(tiny_model_path), "--cache-dir", str(tmp_path)]) == 0
    assert [line.split(": ")[1] for line in capsys.readouterr().out.splitlines()] == ["already converted"] * 2
    # The server then reads both without converting.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(openvino, "convert_in_child", _no_conversion_here)
        mp.setattr(openvino, "convert", _no_conversion_here)
        seg = Sam3Segmenter.from_pretrained(
            tiny_model_path,
            device="cpu",
            vision_backend="openvino",
            detector_backend="openvino",
            openvino_cache_dir=tmp_path,
        )
    assert (seg.vision_backend, seg.detector_backend) == ("openvino", "openvino")


@needs_openvino
def test_convert_command_names_a_missing_model(tmp_path, capsys):
    from segserve.cli import main

    assert main(["convert", "--model", str(tmp_path / "nowhere"), "--cache-dir", str(tmp_path)]) == 1
    assert "nowhere" in capsys.readouterr().err


@needs_openvino
def test_the_child_refuses_other_weights(tiny_model_path, tmp_path, capsys):
    argv = ["--model", str(tiny_model_path), "--cache-dir", str(tmp_path), "--part", "vision", "--expect-key", "0" * 24]
    assert openvino.main(argv) == 3
    assert "not the model in memory" in capsys.readouterr().err
    assert not list(tmp_path.glob("*/vision_encoder.xml"))  # refused before converting


@needs_openvino
def test_a_model_id_that_is_no_checkpoint_is_converted_in_process(tiny_model_path, tmp_path, caplog):
    from transformers import Sam3Model, Sam3Processor

    model = Sam3Model.from_pretrained(tiny_model_path).eval()
    processor = Sam3Processor.from_pretrained(tiny_model_path)
    seg = Sam3Segmenter(model, processor, model_id="bench", vision_backend="openvino", openvino_cache_dir=tmp_path)
    assert seg.vision_backend == "openvino"  # as bench/engine_vs_reference.py builds its engine
    assert any("not the model in memory" in r.getMessage() for r in caplog.records)



# --- the detector ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ov_detector(tiny_model_path, tmp_path_factory):
    cache = tmp_path_factory.mktemp("openvino-detector")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(openvino, "convert", _no_conversion_here)  # converted by the child process
        seg = Sam3Segmenter.from_pretrained(
            tiny_model_path, device="cpu", detector_backend="openvino", openvino_cache_dir=cache, cache=False
        )
    return seg, cache


@needs_openvino
def test_detector_outputs_match_torch(ov_detector, tiny_segmenter, rgb_image):
    seg, cache = ov_detector
    assert (seg.vision_backend, seg.detector_backend) == ("torch", "openvino")
    assert list(cache.glob("*/detector.xml"))
    with torch.inference_mode():
        features = seg.encode_image(rgb_image)
        text, mask = seg.encode_text(["cat", "a red car", "dog"])
        inputs = [*features.detector.tensors(), text, mask]
        got = seg._ov_detector(*inputs)
        want = TextDetector(seg.model).eval()(*inputs)
    # logits, presence, query embeddings, their bias, pixel embeddings
    for ours, ref in zip(got, want, strict=True):
        assert ours.shape == ref.shape
        assert float((ours - ref).abs().max()) < 1e-5


@pytest.mark.parametrize("concepts", [["cat"], ["cat", "dog", "car", "bus"]])  # one row; rows other than traced
@needs_openvino
def test_detector_segments_match_torch(ov_detector, tiny_segmenter, rgb_image, concepts):
    seg, _ = ov_detector
    options = SegmentOptions(threshold=0.25, max_segments=1000)
    ours = seg.segment(rgb_image, concepts, options)
    ref = tiny_segmenter.segment(rgb_image, concepts, options)
    assert ours.labels == ref.labels
    np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-5)
    assert np.mean(ours.masks != ref.masks) < 1e-3  # logits of the random model sit on the cut (see above)


@needs_openvino
def test_exemplar_boxes_stay_on_the_torch_detector(ov_detector, tiny_segmenter, rgb_image):
    from segserve.prompts import Concept

    seg, _ = ov_detector
    concepts = [Concept("cat"), Concept("visual", None, boxes=[(10, 10, 60, 50)])]
    options = SegmentOptions(threshold=0.0, max_segments=1000)
    ours = seg.segment(rgb_image, concepts, options)
    ref = tiny_segmenter.segment(rgb_image, concepts, options)
    assert ours.labels == ref.labels
    np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-5)


# --- without the [cpu] extra ----------------------------------------------------------------------


def test_without_openvino_auto_runs_torch_and_openvino_says_what_to_install(tiny_segmenter, monkeypatch):
    monkeypatch.setattr(openvino, "available", lambda: False)
    monkeypatch.setattr(openvino, "MIN_PARAMETERS", 1)  # "auto" would pick OpenVINO if it were installed
    vision = tiny_segmenter.model.vision_encoder
    assert not openvino.should_use("auto", vision, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match=r"needs the openvino package: pip install 'segserve\[cpu\]'"):
        openvino.should_use("openvino", vision, torch.device("cpu"), torch.float32)


def test_without_openvino_the_convert_command_says_what_to_install(tiny_model_path, tmp_path, monkeypatch, capsys):
    from segserve.cli import main

    monkeypatch.setattr(openvino, "available", lambda: False)
    assert main(["convert", "--model", str(tiny_model_path), "--cache-dir", str(tmp_path)]) == 2
    assert "pip install 'segserve[cpu]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_backend_errors_name_their_setting(tiny_segmenter):
    with pytest.raises(ValueError, match="detector_backend='openvino' runs on the CPU in float32"):
        openvino.should_use(
            "openvino", tiny_segmenter.model.vision_encoder, torch.device("cpu"), torch.bfloat16, "detector_backend"
        )


@needs_openvino
def test_parts_compile_for_static_shapes_and_leave_their_weights_file_unmapped(ov_segmenter, tiny_model_path):
    """Static shapes let the CPU plugin pack the weights while compiling (on the full-size ViT 2.6
    instead of 4.9 GB); the IR's mmapped pages then leave this process's RSS (bench/README.md)."""
    _, cache = ov_segmenter
    seg = Sam3Segmenter.from_pretrained(
        tiny_model_path, device="cpu", vision_backend="openvino", detector_backend="openvino", openvino_cache_dir=cache
    )
    for part in (seg._openvino, seg._ov_detector):
        shapes = [i.get_partial_shape() for i in part.compiled.inputs]
        assert all(s.is_static for s in shapes), shapes
    assert seg._ov_detector.compiled.inputs[-1].get_partial_shape()[0] == 1  # one concept per inference
    weights = list(cache.glob("*/*.bin"))
    assert len(weights) == 2
    assert [resident_kb(path) for path in weights] == [0, 0]


_SIGNAL_AFTER_DROPPING_MODELS = """
import gc, os, signal, sys
from segserve.engine.sam3 import Sam3Segmenter

model, cache = sys.argv[1:]
kwargs = dict(device="cpu", vision_backend="openvino", detector_backend="openvino", openvino_cache_dir=cache)
segmenters = [Sam3Segmenter.from_pretrained(model, **kwargs) for _ in range(2)]
while segmenters:  # in the order they were made: what broke the signal stack
    segmenters.pop(0)
    gc.collect()
hups = []
signal.signal(signal.SIGHUP, lambda *_: hups.append(1))
os.kill(os.getpid(), signal.SIGHUP)
print("handled", len(hups))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no SIGHUP")
@needs_openvino
def test_a_signal_after_its_models_are_dropped_is_handled(ov_segmenter, tiny_model_path):
    """Every OpenVINO CPU plugin swaps the thread's signal stack and frees its own when it dies: with
    a Core per model, a SIGHUP (glossary reload) after models were dropped died of SIGSEGV."""
    _, cache = ov_segmenter
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AFTER_DROPPING_MODELS, str(tiny_model_path), str(cache)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "handled 1"
