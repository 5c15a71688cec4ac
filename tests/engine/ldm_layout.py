"""Diffusers → original (LDM / CompVis) key layout, for writing single-file checkpoints in tests.

The inverse of what diffusers' ``from_single_file`` reads, written from the layout itself:
the UNet's ``input_blocks`` / ``middle_block`` / ``output_blocks`` (one numbered block per
resnet, its attention at ``.1``, the down/up samplers as extra blocks), the VAE's
``encoder.down`` / ``decoder.up`` (the decoder's up blocks numbered from the lowest
resolution), 1×1 convolutions for the VAE's attention projections, and CLIP under
``cond_stage_model.transformer.text_model.`` (SD1.5) or SDXL's two encoders under
``conditioner.embedders.{0,1}`` (the second in open_clip's own layout). ``layers_per_block``
comes from the UNet config.
"""

from __future__ import annotations

import re
from typing import Any

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.transformer.text_model."

_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_FIXED = {"conv_norm_out": "norm_out"}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _resnet(rest: str, names: dict[str, str]) -> str:
    head, _, tail = rest.partition(".")
    return f"{names.get(head, head)}.{tail}"


def unet_key(key: str, layers: int, attention_blocks: set[int]) -> str:
    """One UNet key; ``attention_blocks``: the up blocks that have attentions."""
    for new, old in _UNET_FIXED.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    per = layers + 1  # each level: `layers` resnets + a sampler (down) / layers + 1 resnets (up)
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = 1 + block * per + layer
        if kind == "resnets":
            return f"input_blocks.{index}.0.{_resnet(rest, _UNET_RESNET)}"
        return f"input_blocks.{index}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{1 + int(m[1]) * per + layers}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
        if m[1] == "attentions":
            return f"middle_block.1.{m[3]}"
        return f"middle_block.{2 * int(m[2])}.{_resnet(m[3], _UNET_RESNET)}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = block * per + layer
        if kind == "resnets":
            return f"output_blocks.{index}.0.{_resnet(rest, _UNET_RESNET)}"
        return f"output_blocks.{index}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        block = int(m[1])
        slot = 2 if block in attention_blocks else 1
        return f"output_blocks.{block * per + layers}.{slot}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key}")


def vae_key(key: str, up_blocks: int) -> str:
    side, _, rest = key.partition(".")
    for new, old in _VAE_FIXED.items():
        if rest.startswith(new + "."):
            return f"{side}.{old}{rest[len(new) :]}"
    if m := re.match(r"(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
        level = int(m[2]) if m[1] == "down" else up_blocks - 1 - int(m[2])
        tail = m[4].replace("conv_shortcut", "nin_shortcut")
        return f"{side}.{m[1]}.{level}.block.{m[3]}.{tail}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", rest):
        return f"{side}.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", rest):
        return f"{side}.up.{up_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", rest):
        return f"{side}.mid.block_{int(m[1]) + 1}.{m[2]}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", rest):
        name, _, param = m[1].rpartition(".")
        return f"{side}.mid.attn_1.{_VAE_ATTENTION[name]}.{param}"
    return key  # conv_in, conv_out, quant_conv, post_quant_conv: the same names


def open_clip_keys(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A transformers CLIPTextModelWithProjection in open_clip's layout (SDXL's second
    encoder): fused q/k/v ``in_proj``, ``resblocks``, ``ln_*``, ``c_fc``/``c_proj`` and a
    transposed ``text_projection``."""
    import torch

    out: dict[str, Any] = {}
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc",
             "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}  # fmt: skip
    for key, value in state.items():
        k = key.removeprefix("text_model.")
        if key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif k == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif k == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif k.startswith("final_layer_norm."):
            out[prefix + "ln_final." + k.rpartition(".")[2]] = value
        elif m := re.match(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", k):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
        elif m := re.match(r"encoder\.layers\.(\d+)\.(.*)", k):
            rest = m[2]
            for new, old in names.items():
                rest = rest.replace(new, old)
            out[f"{prefix}transformer.resblocks.{m[1]}.{rest}"] = value
        elif k != "embeddings.position_ids":
            raise KeyError(f"no open_clip name for {key}")
    for (layer, param), parts in qkv.items():
        fused = torch.cat([parts["q"], parts["k"], parts["v"]])
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{param}"] = fused
    return out


def to_ldm(
    unet: dict[str, Any],
    vae: dict[str, Any],
    text: dict[str, Any],
    unet_config: dict[str, Any],
    vae_config: dict[str, Any],
    text_2: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One state dict in the original layout from the diffusers/transformers ones; with
    ``text_2`` (SDXL) the encoders go under ``conditioner.embedders.0`` (CLIP) and ``.1``
    (open_clip), as SDXL's checkpoints hold them."""
    layers = int(unet_config["layers_per_block"])
    ups = unet_config["up_block_types"]
    with_attention = {i for i, kind in enumerate(ups) if "CrossAttn" in kind}
    out: dict[str, Any] = {}
    for key, value in unet.items():
        out[UNET + unet_key(key, layers, with_attention)] = value
    for key, value in vae.items():
        ldm = vae_key(key, len(vae_config["up_block_types"]))
        if ".mid.attn_1." in ldm and ldm.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # the original's attention projections are 1×1 convs
        out[VAE + ldm] = value
    clip = CLIP if text_2 is None else "conditioner.embedders.0.transformer.text_model."
    for key, value in text.items():
        out[clip + key.removeprefix("text_model.")] = value
    if text_2 is not None:
        out.update(open_clip_keys(text_2, "conditioner.embedders.1.model."))
    return out
