"""Single-file checkpoints offline (issue 15 item 2): a ``file:`` entry loads from the
configuration shipped with the package, with HF_HUB_OFFLINE=1 and no hub cache.

The checkpoint is the tiny model rewritten into the original (LDM) key layout by
tests/engine/ldm_layout.py, with the tiny family's configuration beside it; the shipped SD1.5
and SDXL configurations are checked against the published architectures and open_clip's own
tokenizer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from sfumato.engine import Engine, ModelUnavailable, ensure_tiny
from sfumato.engine.singlefile import DATA, family_config
from sfumato.registry import Registry
from sfumato.registry.digest import is_weight

from . import clip_vocab
from .helpers import job, run
from .ldm_layout import to_ldm


def write_ldm_checkpoint(folder: Path, path: Path) -> None:
    def weights(part: str) -> dict:
        (file,) = [p for p in (folder / part).iterdir() if p.suffix == ".safetensors"]
        return load_file(file)

    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    state = to_ldm(
        weights("unet"), weights("vae"), weights("text_encoder"), unet_config, vae_config
    )
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> Path:
    """tiny.safetensors in the original layout, and tiny-config/: the tiny family's configs
    (every file of the tiny pipeline but its weights)."""
    tiny = ensure_tiny(tiny_cache, "sd15")
    where = tmp_path_factory.mktemp("single-file")
    write_ldm_checkpoint(tiny, where / "tiny.safetensors")
    for file in tiny.rglob("*"):
        if file.is_file() and not is_weight(file.name) and not file.name.startswith("."):
            target = where / "tiny-config" / file.relative_to(tiny)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
    return where / "tiny.safetensors"


def registry(folder: Path, body: str) -> Registry:
    path = folder / "models.toml"
    path.write_text(f'default = "tiny-sd"\ninclude_builtin = true\n{body}', encoding="utf-8")
    return Registry.load(path)


def test_an_ldm_checkpoint_loads_offline_and_draws_what_the_diffusers_model_draws(
    checkpoint: Path, tiny_cache: Path
) -> None:
    assert huggingface_hub.constants.HF_HUB_OFFLINE, "HF_HUB_OFFLINE=1 must be set in tests"
    keys = load_file(str(checkpoint)).keys()
    assert all(
        k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model."))
        for k in keys
    )
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    reg = registry(
        checkpoint.parent,
        '[models.ckpt]\nkind = "base"\nfamily = "sd15"\nsource = "file:tiny.safetensors"\n'
        'config = "tiny-config"\n',
    )
    assert reg.get("ckpt").config == str(checkpoint.parent / "tiny-config")
    engine = Engine(reg, cache_dir=tiny_cache, device="cpu")
    for seed in (3,):  # one seed: each model switch reloads (one model is held at a time)
        from_file = run(engine, job(seed=seed, model="ckpt", width=64, height=64, steps=2))
        from_tiny = run(engine, job(seed=seed, model="tiny-sd", width=64, height=64, steps=2))
        assert from_file.model == "ckpt"
        assert from_file.images[0].shape == from_tiny.images[0].shape
        diff = np.abs(from_file.images[0].astype(int) - from_tiny.images[0].astype(int))
        assert diff.max() <= 1, f"seed {seed}: the same weights drew another image"
        assert from_file.images[0].std() > 0


def sdxl_with_two_widths(tiny: Path, folder: Path) -> None:
    """The tiny SDXL with a wider second text encoder (48, not 32). Real SDXL checkpoints tell
    their two encoders apart by width (768 vs 1280), and so does from_single_file: with equal
    widths it would read CLIP-L's weights for both."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny)
    text = CLIPTextConfig.from_pretrained(tiny / "text_encoder_2").to_dict()
    text.update(hidden_size=48, projection_dim=48)
    unet = dict(UNet2DConditionModel.load_config(tiny / "unet"))
    unet.update(cross_attention_dim=32 + 48, projection_class_embeddings_input_dim=48 + 6 * 8)
    torch.manual_seed(5)
    pipe.text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text))
    pipe.unet = UNet2DConditionModel.from_config(unet)
    pipe.register_modules(text_encoder_2=pipe.text_encoder_2, unet=pipe.unet)
    pipe.save_pretrained(folder)


def test_an_sdxl_checkpoint_with_its_open_clip_encoder_loads_offline_and_draws_the_same(
    tmp_path: Path, tiny_cache: Path
) -> None:
    reference = tmp_path / "reference"
    sdxl_with_two_widths(ensure_tiny(tiny_cache, "sdxl"), reference)

    def weights(part: str) -> dict:
        (file,) = [p for p in (reference / part).iterdir() if p.suffix == ".safetensors"]
        return load_file(file)

    state = to_ldm(
        weights("unet"),
        weights("vae"),
        weights("text_encoder"),
        json.loads((reference / "unet" / "config.json").read_text()),
        json.loads((reference / "vae" / "config.json").read_text()),
        text_2=weights("text_encoder_2"),
    )
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in state
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "xl.safetensors"))
    shutil.copytree(reference, tmp_path / "xl-config", ignore=lambda _d, names: [
        n for n in names if is_weight(n)
    ])  # fmt: skip
    reg = registry(
        tmp_path,
        '[models.xl]\nkind = "base"\nfamily = "sdxl"\nsource = "file:xl.safetensors"\n'
        'config = "xl-config"\n[models.ref]\nkind = "base"\nfamily = "sdxl"\n'
        'source = "dir:reference"\n',
    )
    engine = Engine(reg, cache_dir=tiny_cache, device="cpu")
    from_file = run(engine, job(seed=8, model="xl", width=64, height=64, steps=2))
    from_dir = run(engine, job(seed=8, model="ref", width=64, height=64, steps=2))
    diff = np.abs(from_file.images[0].astype(int) - from_dir.images[0].astype(int))
    assert diff.max() <= 1, "the SDXL checkpoint drew another image than its diffusers folder"
    assert from_file.images[0].std() > 0


def test_a_config_folder_without_model_index_says_what_it_needs(
    checkpoint: Path, tiny_cache: Path
) -> None:
    (checkpoint.parent / "empty").mkdir(exist_ok=True)
    reg = registry(
        checkpoint.parent,
        '[models.bad]\nkind = "base"\nfamily = "sd15"\nsource = "file:tiny.safetensors"\n'
        'config = "empty"\n',
    )
    with pytest.raises(ModelUnavailable, match=r"model_index\.json"):
        Engine(reg, cache_dir=tiny_cache, device="cpu").load("bad")


def test_the_shipped_family_configs_build_the_published_architectures(tmp_path: Path) -> None:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    # Parameter counts of the published models (their model cards: ~860M, ~2.6B, 83.7M, 123M,
    # 695M): a wrong number in a shipped config changes them.
    published = {
        ("sd15", "unet"): 859_520_964, ("sdxl", "unet"): 2_567_463_684,
        ("sd15", "vae"): 83_653_863, ("sdxl", "vae"): 83_653_863,
        ("sd15", "text_encoder"): 123_060_480, ("sdxl", "text_encoder"): 123_060_480,
        ("sdxl", "text_encoder_2"): 694_659_840,
    }  # fmt: skip
    classes = {"unet": UNet2DConditionModel, "vae": AutoencoderKL}
    text = {"text_encoder": CLIPTextModel, "text_encoder_2": CLIPTextModelWithProjection}
    for (family, part), count in published.items():
        folder = family_config(family, tmp_path)
        with init_empty_weights():
            if part in classes:
                cls = classes[part]
                model = cls.from_config(cls.load_config(folder / part))
            else:
                model = text[part](CLIPTextConfig.from_pretrained(folder / part))
        assert sum(p.numel() for p in model.parameters()) == count, (family, part)
    # The text encoders are open_clip's ViT-L/14 and ViT-bigG/14 text towers.
    towers = {"text_encoder": "ViT-L-14", "text_encoder_2": "ViT-bigG-14"}
    for part, name in towers.items():
        ours = json.loads((DATA / "sdxl" / part / "config.json").read_text())
        theirs = json.loads(
            (clip_vocab.open_clip_bpe().parent / "model_configs" / f"{name}.json").read_text()
        )
        cfg = theirs["text_cfg"]
        assert (ours["hidden_size"], ours["num_attention_heads"], ours["num_hidden_layers"]) == (
            cfg["width"],
            cfg["heads"],
            cfg["layers"],
        )
        assert (ours["vocab_size"], ours["max_position_embeddings"]) == (
            cfg["vocab_size"],
            cfg["context_length"],
        )
    for family in ("sd15", "sdxl"):
        index = json.loads((DATA / family / "model_index.json").read_text())
        parts = {k for k, v in index.items() if isinstance(v, list) and v[0] is not None}
        assert parts == {p.name for p in family_config(family, tmp_path).iterdir() if p.is_dir()}


def test_the_shipped_clip_vocabulary_is_clips_own() -> None:
    vocab, merges = clip_vocab.build(clip_vocab.open_clip_bpe())
    assert (DATA / "clip" / "vocab.json").read_text(encoding="utf-8") == vocab
    assert (DATA / "clip" / "merges.txt").read_text(encoding="utf-8") == merges
    assert len(json.loads(vocab)) == 49408


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object, object]:
    from transformers import CLIPTokenizer

    folder = family_config("sdxl", tmp_path_factory.mktemp("configs"))
    ours = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    second = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True)
    return ours, second, clip_vocab.load_open_clip_tokenizer()


PROMPTS = [
    "a photo of a cat",
    "A lighthouse at dusk, oil painting, trending on artstation!!",
    "mossy stone wall, 4k, highly-detailed (masterpiece:1.2)",
    "Café in Zürich — naïve façade",
    "don't they're we've I'll",
]
WORDS = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 ,.!?'-()éü"), max_size=60
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=WORDS)
def test_the_shipped_tokenizer_agrees_with_open_clips(tokenizers: tuple, text: str) -> None:
    ours, second, theirs = tokenizers
    for prompt in [*PROMPTS, text]:
        expected = [49406, *theirs.encode(prompt), 49407]  # type: ignore[attr-defined]
        assert ours(prompt)["input_ids"] == expected, prompt
        if "!" not in prompt:
            assert second(prompt)["input_ids"] == expected, prompt
    # SDXL's second tokenizer on the hub pads with "!" as a special token, so a "!" in a prompt
    # becomes the pad id 0 there, unlike open_clip (diffusers issue 4153): kept, so a
    # single-file SDXL reads a prompt as the hub's SDXL does.
    assert second("a ! b!!")["input_ids"] == [49406, 320, 0, 321, 0, 0, 49407]
    assert ours.pad_token_id == 49407 and second.pad_token_id == 0
