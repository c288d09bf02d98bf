"""Test helpers: a tiny random SAM 3 checkpoint that loads through the production code path.

>>> path = make_tiny_sam3(tmp_path / "tiny-sam3")          # doctest: +SKIP
>>> seg = Sam3Segmenter.from_pretrained(path)               # doctest: +SKIP

The directory has the same layout as `facebook/sam3`: a `sam3_video` checkpoint holding the
detector (`detector_model.*`), the tracker (`tracker_model.*`, `tracker_neck.*`), the image
processor config and a CLIP-style BPE tokenizer. Everything is random and small: it is for
checking plumbing and parity with transformers, never mask quality.
"""

from __future__ import annotations

from pathlib import Path

TINY_IMAGE_SIZE = 112  # 8 x 8 patches of 14 pixels
TINY_QUERIES = 20


def _byte_vocab() -> tuple[dict[str, int], list[str]]:
    """A complete byte-level BPE vocabulary with no merges: every text tokenises, one token per byte.

    CLIP maps bytes to printable unicode characters (`bytes_to_unicode`); with each character as
    a word-internal token and as a word-final `</w>` token, any string has a tokenisation.
    """
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())  # the 256 printable stand-ins for bytes (GPT-2 / CLIP)
    vocab: dict[str, int] = {}
    for ch in chars:
        vocab[ch] = len(vocab)
    for ch in chars:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, []


def tiny_sam3_config(seed_vocab_size: int):
    """The `Sam3VideoConfig` of the tiny model (detector + tracker sharing one ViT)."""
    from transformers import Sam3VideoConfig

    vit = {
        "model_type": "sam3_vit_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": TINY_IMAGE_SIZE,
        "patch_size": 14,
        "window_size": 4,
        "global_attn_indexes": [1],
        "pretrain_image_size": 56,
    }
    vision = {
        "model_type": "sam3_vision_model",
        "backbone_config": vit,
        "fpn_hidden_size": 32,
        "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
    }
    text = {
        "vocab_size": seed_vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 32,
        "bos_token_id": seed_vocab_size - 2,
        "eos_token_id": seed_vocab_size - 1,
        "pad_token_id": seed_vocab_size - 1,
    }
    small = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    detector = {
        "vision_config": vision,
        "text_config": text,
        "geometry_encoder_config": {**small, "num_layers": 1},
        "detr_encoder_config": {**small, "num_layers": 1},
        "detr_decoder_config": {**small, "num_layers": 2, "num_queries": TINY_QUERIES},
        "mask_decoder_config": {"hidden_size": 32, "num_attention_heads": 2, "num_upsampling_stages": 3},
    }
    tracker = {
        "vision_config": vision,
        "image_size": TINY_IMAGE_SIZE,
        "prompt_encoder_config": {"hidden_size": 32, "image_size": TINY_IMAGE_SIZE, "patch_size": 14},
        "mask_decoder_config": {
            "hidden_size": 32,
            "num_attention_heads": 2,
            "mlp_dim": 64,
            "iou_head_hidden_dim": 32,
        },
        "memory_attention_hidden_size": 32,
        "memory_encoder_hidden_size": 32,
        "memory_encoder_output_channels": 16,
    }
    return Sam3VideoConfig(detector_config=detector, tracker_config=tracker)


def make_tiny_sam3(path: str | Path, seed: int = 0) -> Path:
    """Write a complete tiny random SAM 3 checkpoint directory to `path` and return it.

    Loadable offline by `Sam3Segmenter.from_pretrained(path)` and by transformers'
    `Sam3Processor.from_pretrained(path)` / `Sam3Model.from_pretrained(path)`.
    """
    import torch
    from transformers import CLIPTokenizer, Sam3ImageProcessor, Sam3Processor, Sam3VideoModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab, merges = _byte_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 32

    config = tiny_sam3_config(len(vocab))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3VideoModel(config).eval()
    model.save_pretrained(path)

    image_processor = Sam3ImageProcessor(
        size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        mask_size={"height": TINY_IMAGE_SIZE // 14 * 4, "width": TINY_IMAGE_SIZE // 14 * 4},
    )
    Sam3Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path
