"""SAM 3's detector for text concepts, split into what depends on the image alone (computed once per
image, cached with its vision features) and what each concept adds.

`Sam3Model.forward` recomputes per concept two things that never see the concept:
- the DETR encoder's first self-attention (its input is the image's tokens; text enters only at the
  layer's cross-attention after it): 1/6 of the encoder's attention;
- the pixel decoder's convolutions of the backbone's skip connections: each stage is
  `conv3x3(upsample2x(x) + skip)`, and a convolution is linear, so it is `conv(upsample2x(x)) +
  conv(skip)`. `conv(skip)` is per image (98 + 25 GFLOP at 288^2 and 144^2 on SAM 3), and a 3x3
  convolution of a nearest-upsampled map is four 2x2 convolutions of the small map (4/9 of the
  arithmetic), so what a concept pays there drops from 122 to 54 GFLOP.
And it computes mask logits for all 200 queries through a 1x1 projection at 288^2; here the
projection is folded into the query embeddings (`MaskLogits`), and only the masks the
post-processing keeps are ever computed.

Same weights, same operations up to floating-point association: outputs equal `Sam3Model.forward`
within ~1e-5 (tests/engine/test_detector.py). Exemplar boxes (the geometry encoder) are not
covered: those concepts keep `Sam3Model.forward`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class DetectorImageState:
    """What the detector computes once per image: the DETR encoder's tokens after its first
    self-attention, their position encodings, and each pixel-decoder stage's convolved skip."""

    tokens: torch.Tensor  # (1, H*W, D)
    position: torch.Tensor  # (1, H*W, D)
    skips: tuple[torch.Tensor, ...]  # (1, C, h_i, w_i), coarse to fine

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def tensors(self) -> list[torch.Tensor]:
        return [self.tokens, self.position, *self.skips]


def splittable(features: Any) -> bool:
    """Whether each pixel-decoder stage doubles the size (SAM 3's 4x/2x/1x levels do): the
    four-phase convolution assumes it."""
    levels = features.fpn_hidden_states[:-1]  # Sam3Model.forward drops the last (0.5x) level
    sizes = [t.shape[-2:] for t in levels]
    return all(a[0] == 2 * b[0] and a[1] == 2 * b[1] for a, b in itertools.pairwise(sizes))


def image_state(model: Any, features: Any) -> DetectorImageState:
    """The per-image part, on torch (one attention layer and two convolutions)."""
    levels = features.fpn_hidden_states[:-1]
    tokens = levels[-1].flatten(2).transpose(1, 2)
    position = features.fpn_position_encoding[:-1][-1].flatten(2).transpose(1, 2)
    layer = model.detr_encoder.layers[0]
    # Sam3DetrEncoderLayer.forward up to its cross-attention (dropout is identity in eval).
    hidden = layer.layer_norm1(tokens)
    with_position = hidden + position
    attended, _ = layer.self_attn(query=with_position, key=with_position, value=hidden)
    tokens = attended + tokens
    convs = model.mask_decoder.pixel_decoder.conv_layers
    skips = tuple(convs[i](skip) for i, skip in enumerate(reversed(levels[:-1])))
    return DetectorImageState(tokens=tokens.contiguous(), position=position.contiguous(), skips=skips)


def upsample_conv(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """`conv(nearest_upsample_2x(x))` without its bias, as four 2x2 convolutions of `x`.

    Output row 2i reads upsampled rows 2i-1, 2i, 2i+1 = x rows i-1, i, i: kernel rows (0, 1+2) on
    x rows (i-1, i); row 2i+1 reads x rows i, i, i+1: kernel rows (0+1, 2) on (i, i+1). Columns
    alike. Zero padding of the upsampled map is zero padding of `x`.
    """
    w = conv.weight  # (C_out, C_in, 3, 3)

    def taps(k: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The 3 taps along `dim` as the 2 taps each output phase applies: (0, 1+2), (0+1, 2)."""
        t = k.unbind(dim)
        return torch.stack([t[0], t[1] + t[2]], dim), torch.stack([t[0] + t[1], t[2]], dim)

    kernels = [by_col for by_row in taps(w, 2) for by_col in taps(by_row, 3)]
    # Phase (a, b) reads x rows (i-1+a, i+a) and columns (j-1+b, j+b): padded so each comes out HxW.
    phases = [
        F.conv2d(F.pad(x, (1 - b, b, 1 - a, a)), kernel)
        for kernel, (a, b) in zip(kernels, itertools.product((0, 1), (0, 1)), strict=True)
    ]
    n, c, h, w_ = x.shape[0], w.shape[0], x.shape[-2], x.shape[-1]
    # Channel c * 4 + (2a + b) -> pixel (2i + a, 2j + b): a depth-to-space. Interleaving the phases
    # by strided stacking instead became a slow reference Concat in OpenVINO (the 288^2 stage 0.60
    # vs 0.46 s on a half-speed 2-core CPU).
    return F.pixel_shuffle(torch.stack(phases, 2).reshape(n, 4 * c, h, w_), 2)


class TextDetector(torch.nn.Module):
    """The per-concept part: (image state tensors, text features (N, T, D), attention mask (N, T))
    -> (pred_logits (N, Q), presence_logits (N, 1), query mask embeddings (N, Q, C) with the
    instance projection folded in, their bias (N, Q), pixel embeddings (N, C, h, w)).

    `forward` takes flat tensors (what OpenVINO traces); `DetectorImageState.tensors()` gives them.
    """

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, position: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from transformers.masking_utils import create_bidirectional_mask

        *skips, text, mask = rest
        m = self.model
        n = text.shape[0]
        text_mask = mask.bool()
        tokens = tokens.expand(n, -1, -1)
        position = position.expand(n, -1, -1)
        encoder = m.detr_encoder
        cross_mask = create_bidirectional_mask(
            config=encoder.config, inputs_embeds=tokens, attention_mask=text_mask, encoder_hidden_states=text
        )
        # Sam3DetrEncoderLayer.forward from its cross-attention on (the self-attention is per image).
        first = encoder.layers[0]
        attended, _ = first.cross_attn(query=first.layer_norm2(tokens), key=text, value=text, attention_mask=cross_mask)
        hidden = attended + tokens
        hidden = first.mlp(first.layer_norm3(hidden)) + hidden
        for layer in encoder.layers[1:]:
            hidden = layer(hidden, prompt_feats=text, vision_pos_encoding=position, prompt_cross_attn_mask=cross_mask)

        size = skips[0].shape[-2] // 2, skips[0].shape[-1] // 2
        decoder = m.detr_decoder(
            vision_features=hidden,
            text_features=text,
            vision_pos_encoding=position,
            text_mask=text_mask,
            spatial_shapes=torch.tensor([size], dtype=torch.long, device=hidden.device),
        )
        logits = m.dot_product_scoring(
            decoder_hidden_states=decoder.intermediate_hidden_states, text_features=text, text_mask=text_mask
        ).squeeze(-1)[-1]
        presence = decoder.presence_logits[-1]

        # Sam3MaskDecoder.forward: prompt cross-attention, then the pixel decoder on the encoder's tokens.
        head = m.mask_decoder
        normed = head.prompt_cross_attn_norm(hidden)
        prompt_mask = create_bidirectional_mask(
            config=head.config, inputs_embeds=normed, encoder_hidden_states=text, attention_mask=text_mask
        )
        attended, _ = head.prompt_cross_attn(query=normed, key=text, value=text, attention_mask=prompt_mask)
        hidden = hidden + attended
        pixels = hidden[:, : size[0] * size[1]].transpose(1, 2).reshape(n, -1, *size)
        decoder_pixels = head.pixel_decoder
        for i, skip in enumerate(skips):
            pixels = upsample_conv(pixels, decoder_pixels.conv_layers[i]) + skip
            pixels = F.relu(decoder_pixels.norms[i](pixels))

        queries = head.mask_embedder(decoder.intermediate_hidden_states[-1])
        projection = head.instance_projection  # a 1x1 convolution, folded into the queries
        weight = projection.weight.flatten(1)  # (C_out, C_in)
        return logits, presence, queries @ weight, queries @ projection.bias, pixels


class MaskLogits:
    """Low-resolution mask logits (N, Q, h, w), computed only for the rows asked for:
    `masks[concept_idx, query_idx]` -> (R, h, w), what `detections_to_result` reads.

    One entry per concept: its logits (Q, h, w) (`Sam3Model.forward`'s, for exemplar concepts), or
    `TextDetector`'s (queries (Q, C), bias (Q,), pixels (C, h, w)), of which a row's logits are
    `queries[q] @ pixels + bias[q]`: what the instance projection and the einsum of
    `Sam3MaskDecoder` compute, for the kept rows only.
    """

    def __init__(self, rows: list[Any]):
        self.rows = rows

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, Q, h, w), as the tensor it stands for."""
        row = self.rows[0]
        if isinstance(row, torch.Tensor):
            return (len(self.rows), *row.shape)
        embeddings, _, pixels = row
        return (len(self.rows), embeddings.shape[0], *pixels.shape[-2:])

    @staticmethod
    def _logits(row: Any, queries: torch.Tensor) -> torch.Tensor:
        if isinstance(row, torch.Tensor):
            return row[queries]
        embeddings, bias, pixels = row
        flat = embeddings[queries] @ pixels.flatten(1) + bias[queries].unsqueeze(1)
        return flat.view(-1, *pixels.shape[-2:])

    def __getitem__(self, index: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        concept_idx, query_idx = index
        parts = {c: self._logits(self.rows[c], query_idx[concept_idx == c]) for c in concept_idx.unique().tolist()}
        if not parts:
            return torch.empty(0)
        first = next(iter(parts.values()))
        out = first.new_empty((len(concept_idx), *first.shape[1:]))
        for c, logits in parts.items():
            out[concept_idx == c] = logits
        return out
