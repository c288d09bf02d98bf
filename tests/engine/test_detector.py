"""The split detector (engine/detector.py) against `Sam3Model.forward`, on the tiny model."""

from __future__ import annotations

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from segserve.engine.detector import MaskLogits, TextDetector, image_state, splittable, upsample_conv


def reference(seg, features, text, mask):
    return seg.model(
        vision_embeds=features.expand(text.shape[0]),
        text_embeds=BaseModelOutputWithPooling(pooler_output=text),
        attention_mask=mask,
    )


def split(seg, features, text, mask):
    state = image_state(seg.model, features)
    return TextDetector(seg.model).eval()(*state.tensors(), text, mask)


@pytest.mark.parametrize(
    "texts",
    [
        ["cat"],  # one row: broadcasting the image state over a batch of one
        ["cat", "a red car", "dog"],  # padded rows of different lengths
    ],
)
def test_outputs_equal_sam3_forward(tiny_segmenter, rgb_image, texts):
    seg = tiny_segmenter
    with torch.inference_mode():
        features = seg.encode_image(rgb_image)
        text, mask = seg.encode_text(texts)
        logits, presence, queries, bias, pixels = split(seg, features, text, mask)
        ref = reference(seg, features, text, mask)
    assert splittable(features)
    assert (logits - ref.pred_logits).abs().max() < 1e-5
    assert (presence - ref.presence_logits).abs().max() < 1e-5
    masks = MaskLogits([(queries[k], bias[k], pixels[k]) for k in range(len(texts))])
    everything = torch.cartesian_prod(torch.arange(len(texts)), torch.arange(ref.pred_masks.shape[1]))
    got = masks[everything[:, 0], everything[:, 1]].view_as(ref.pred_masks)
    assert (got - ref.pred_masks).abs().max() < 1e-4 * max(1.0, float(ref.pred_masks.abs().max()))


def test_upsample_conv_is_conv_of_the_upsampled_map():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 7, 3, padding=1)
    for shape in [(2, 5, 4, 6), (1, 5, 1, 1), (1, 5, 3, 2)]:  # rectangular; one pixel; odd sides
        x = torch.randn(shape)
        want = torch.nn.functional.conv2d(
            torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"), conv.weight, padding=1
        )
        with torch.no_grad():
            assert torch.allclose(upsample_conv(x, conv), want, atol=1e-5), shape


def test_mask_logits_mix_dense_and_folded_rows():
    torch.manual_seed(0)
    dense = torch.randn(4, 3, 2)
    queries, bias, pixels = torch.randn(4, 5), torch.randn(4), torch.randn(5, 3, 2)
    masks = MaskLogits([dense, (queries, bias, pixels)])
    got = masks[torch.tensor([1, 0, 1]), torch.tensor([2, 3, 0])]
    assert torch.allclose(got[1], dense[3])
    assert torch.allclose(got[0], torch.einsum("c,chw->hw", queries[2], pixels) + bias[2], atol=1e-6)
    assert torch.allclose(got[2], torch.einsum("c,chw->hw", queries[0], pixels) + bias[0], atol=1e-6)
    assert masks[torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long)].numel() == 0
    # The shape of the (N, Q, h, w) tensor it stands for, whichever kind of row comes first.
    assert masks.shape == (2, 4, 3, 2)
    assert MaskLogits([(queries, bias, pixels), dense]).shape == (2, 4, 3, 2)
