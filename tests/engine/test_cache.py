"""The vision-feature and text caches: same answers, fewer passes, bounded memory."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from segserve.engine.cache import LRUCache, image_key
from segserve.engine.features import features_nbytes
from segserve.engine.sam3 import DEFAULT_CACHE_IMAGES, Sam3Segmenter
from segserve.types import SegmentationResult, SegmentOptions

# The tiny random model scores every query ~0.25: this keeps about half of them.
OPTIONS = SegmentOptions(threshold=0.25, max_segments=1000)


def assert_same(a: SegmentationResult, b: SegmentationResult) -> None:
    """Bit-for-bit: the cache must be invisible in the output."""
    assert a.labels == b.labels
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.boxes, b.boxes)


@pytest.fixture
def cached(tiny_model_path) -> Sam3Segmenter:
    """A fresh segmenter per test, so counters and cache contents start at zero."""
    return Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu")


@pytest.fixture(scope="module")
def uncached(tiny_model_path) -> Sam3Segmenter:
    return Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu", cache=False)


# --- the engine ---------------------------------------------------------------------------------


def test_cached_and_uncached_paths_give_identical_results(cached, uncached, rgb_image):
    concepts = ["cat", "dog"]
    cold = cached.segment(rgb_image, concepts, OPTIONS)
    warm = cached.segment(rgb_image, concepts, OPTIONS)  # vision and text both from the cache
    plain = uncached.segment(rgb_image, concepts, OPTIONS)
    assert len(cold) > 0
    assert_same(cold, warm)
    assert_same(cold, plain)
    assert cached.stats["vision_passes"] == 1
    assert cached.stats["text_passes"] == 1


def test_reprompt_on_the_same_image_runs_no_vision_pass(cached, uncached, rgb_image):
    cached.segment(rgb_image, ["cat"], OPTIONS)
    reprompt = cached.segment(rgb_image, ["bird", "car"], OPTIONS)
    assert cached.stats["vision_passes"] == 1
    assert cached.stats["vision_cache_hits"] == 1
    assert cached.stats["vision_cache_misses"] == 1
    assert_same(reprompt, uncached.segment(rgb_image, ["bird", "car"], OPTIONS))


def test_the_same_pixels_hit_whatever_array_holds_them(cached, rgb_image):
    cached.segment(rgb_image, ["cat"], OPTIONS)
    cached.segment(rgb_image.copy(), ["cat"], OPTIONS)  # another array, same content
    cached.segment(np.asfortranarray(rgb_image), ["cat"], OPTIONS)  # another memory layout
    assert cached.stats["vision_passes"] == 1
    other = rgb_image.copy()
    other[0, 0, 0] ^= 1  # one bit of one pixel
    cached.segment(other, ["cat"], OPTIONS)
    assert cached.stats["vision_passes"] == 2


def test_vision_cache_evicts_least_recently_used_by_bytes(tiny_model_path, rgb_image):
    one_image = features_nbytes(
        Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu", cache=False).model, torch.float32
    )
    seg = Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu", cache_mb=2 * one_image / 2**20)
    images = [np.roll(rgb_image, i, axis=1) for i in range(3)]
    for image in images:
        seg.encode_image(image)
    stats = seg.cache_stats()["vision"]
    assert (stats["entries"], stats["evictions"]) == (2, 1)
    assert stats["capacity"] == 2 * one_image
    seg.encode_image(images[2])  # newest: a hit
    seg.encode_image(images[1])  # a hit, and now images[2] is the oldest
    assert seg.stats["vision_passes"] == 3
    seg.encode_image(images[0])  # evicted earlier: a pass, which evicts images[2]
    seg.encode_image(images[1])  # still there
    assert seg.stats["vision_passes"] == 4
    seg.encode_image(images[2])
    assert seg.stats["vision_passes"] == 5


def test_default_cache_holds_eight_images_and_shares_position_encodings(cached, rgb_image):
    first = cached.encode_image(rgb_image)
    second = cached.encode_image(np.roll(rgb_image, 1, axis=0))
    assert cached.vision_cache.capacity == DEFAULT_CACHE_IMAGES * first.nbytes(include_position=False)
    # One copy of the position encodings for all images of a size.
    for a, b in zip(first.fpn_position_encoding, second.fpn_position_encoding):
        assert a is b
    stats = cached.cache_stats()["vision"]
    position = sum(t.numel() * t.element_size() for t in first.fpn_position_encoding)
    assert stats["bytes"] == 2 * first.nbytes(include_position=False) + position


def test_disabled_cache_runs_every_pass(uncached, rgb_image):
    before = uncached.stats["vision_passes"]
    uncached.segment(rgb_image, ["cat"], OPTIONS)
    uncached.segment(rgb_image, ["cat"], OPTIONS)
    assert uncached.stats["vision_passes"] - before == 2
    assert uncached.cache_stats()["vision"]["entries"] == 0


def test_text_cache_encodes_each_concept_once(cached, rgb_image):
    cached.segment(rgb_image, ["cat", "dog"], OPTIONS)
    cached.segment(rgb_image, ["dog", "bird", "cat"], OPTIONS)  # only "bird" is new
    cached.segment(rgb_image, ["cat"], OPTIONS)
    assert cached.stats["text_passes"] == 2
    text = cached.cache_stats()["text"]
    assert (text["entries"], text["misses"], text["hits"]) == (3, 3, 3)


def test_text_features_are_the_models_own(cached):
    """What the cache stores equals what `Sam3Model.forward` computes from `input_ids` wherever the
    mask lets a reader see it (padding past the batch's longest text is not computed:
    `Sam3Segmenter._text_features`)."""
    from segserve.prompts import MAX_TEXT_TOKENS, tokenize_concepts

    concepts = ["cat", "a red car", "cat"]
    feats, mask = cached.encode_text(concepts)
    tokens = tokenize_concepts(cached.processor.tokenizer, concepts, MAX_TEXT_TOKENS)
    with torch.inference_mode():
        want = cached.model.get_text_features(**tokens, return_dict=True).pooler_output
    torch.testing.assert_close(mask, tokens["attention_mask"])
    seen = mask.bool()
    torch.testing.assert_close(feats[seen], want[seen], atol=1e-6, rtol=0)


def test_a_negative_cache_size_is_refused_naming_the_setting(tiny_model_path):
    with pytest.raises(ValueError, match="cache_mb"):
        Sam3Segmenter.from_pretrained(tiny_model_path, device="cpu", cache_mb=-1)


# --- the LRU on its own -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "puts", "kept"),
    [
        (10, [("a", 4), ("b", 4)], ["a", "b"]),  # both fit
        (10, [("a", 4), ("b", 4), ("c", 4)], ["b", "c"]),  # the oldest goes
        (10, [("a", 4), ("b", 4), ("a", 4), ("c", 4)], ["a", "c"]),  # re-putting refreshes "a"
        (10, [("a", 4), ("big", 11)], ["a"]),  # larger than the budget: not stored, nothing evicted
        (10, [("a", 4), ("a", 9)], ["a"]),  # replacing counts the new size only
        (0, [("a", 1)], []),  # capacity 0: disabled
    ],
)
def test_lru_keeps_what_fits(capacity, puts, kept):
    cache: LRUCache[int] = LRUCache(capacity, sizeof=lambda v: v)
    for key, size in puts:
        cache.put(key, size)
    assert [k for k in ["a", "b", "c", "big"] if k in cache] == kept
    assert cache.size <= capacity


def test_lru_get_refreshes_and_counts():
    cache: LRUCache[str] = LRUCache(2, sizeof=lambda _: 1)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # "a" is now the most recent
    cache.put("c", "C")
    assert cache.get("b") is None
    assert cache.stats() == {"hits": 1, "misses": 1, "evictions": 1, "entries": 2, "size": 2, "capacity": 2}


def test_lru_is_safe_across_threads():
    cache: LRUCache[int] = LRUCache(50, sizeof=lambda _: 1)

    def work(offset: int) -> None:
        for i in range(2000):
            cache.put((offset + i) % 80, i)
            cache.get((offset * 7 + i) % 80)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cache.stats()
    assert stats["entries"] == len(cache) == stats["size"] <= 50
    assert stats["hits"] + stats["misses"] == 4 * 2000


@pytest.mark.parametrize(
    ("change", "same"),
    [
        (lambda a: (a.copy(), "m", 1008), True),  # another array, same pixels
        (lambda a: (a[:, :-1], "m", 1008), False),  # another shape
        (lambda a: (a, "other-model", 1008), False),  # another model
        (lambda a: (a, "m", 644), False),  # another input resolution
        (lambda a: (a.reshape(a.shape[1], a.shape[0], 3), "m", 1008), False),  # same bytes, transposed shape
    ],
)
def test_image_key(rgb_image, change, same):
    assert (image_key(rgb_image, "m", 1008) == image_key(*change(rgb_image))) is same
