"""The registry every server knows without a file (``include_builtin = true`` adds it to one).

The tiny families (random weights, built locally, run offline) with a tiny ControlNet per
control kind, a style LoRA and a preview decoder each, so every path runs with no network;
and the public models they stand in for: SD1.5 and SDXL, their ControlNets, TAESD, and the
turbo models (SDXL-Turbo; SD-Turbo, the one sd21 entry).
Kept apart from ``rules.py`` because it is data, not the rules that check it.
"""

from __future__ import annotations

_BASES = """
default = "tiny-sd"

[models.tiny-sd]
kind = "base"
family = "sd15"
source = "tiny:sd15"
license = "Apache-2.0"
approved = true
description = "Tiny SD1.5-shaped model with random weights, built locally: images are noise. For tests and demos."

[models.tiny-sdxl]
kind = "base"
family = "sdxl"
source = "tiny:sdxl"
license = "Apache-2.0"
approved = true
description = "Tiny SDXL-shaped model with random weights, built locally: images are noise. For tests and demos."

[models.tiny-sd-turbo]
kind = "base"
family = "sd15"
source = "tiny:sd15"
turbo = "adversarial"
license = "Apache-2.0"
approved = true
description = "Tiny stand-in for a turbo model (the tiny sd15 weights, random): sampled as SD-Turbo is, 1–4 steps, guidance 0. For live painting tests."

[models.sdxl-turbo]
kind = "base"
family = "sdxl"
source = "hub:stabilityai/sdxl-turbo"
turbo = "adversarial"
license = "sai-nc-community"
approved = false
description = "SDXL-Turbo (adversarial diffusion distillation), 512 px in 1–4 steps, guidance 0: for live painting. Non-commercial community license: approve it where that fits."

[models.sd-turbo]
kind = "base"
family = "sd21"
source = "hub:stabilityai/sd-turbo"
turbo = "adversarial"
license = "sai-nc-community"
approved = false
description = "SD-Turbo (SD 2.1, adversarial diffusion distillation), 512 px in 1–4 steps, guidance 0: the lightest live painting model. No ControlNets or adapters are registered for sd21. Non-commercial community license: approve it where that fits."

[models.sd15]
kind = "base"
family = "sd15"
source = "hub:stable-diffusion-v1-5/stable-diffusion-v1-5"
license = "creativeml-openrail-m"
approved = true
description = "Stable Diffusion 1.5, 512 px."

[models.sdxl]
kind = "base"
family = "sdxl"
source = "hub:stabilityai/stable-diffusion-xl-base-1.0"
license = "openrail++"
approved = true
description = "Stable Diffusion XL base 1.0, 1024 px."
"""

_PARTS = """
[models.sd15-depth]
kind = "controlnet"
family = "sd15"
control = "depth"
source = "hub:lllyasviel/control_v11f1p_sd15_depth"
license = "openrail"
description = "ControlNet 1.1 depth (near bright, far dark)."

[models.sd15-normal]
kind = "controlnet"
family = "sd15"
control = "normal"
source = "hub:lllyasviel/control_v11p_sd15_normalbae"
license = "openrail"
description = "ControlNet 1.1 normal (Bae's normal maps)."

[models.sd15-canny]
kind = "controlnet"
family = "sd15"
control = "canny"
source = "hub:lllyasviel/control_v11p_sd15_canny"
license = "openrail"
description = "ControlNet 1.1 canny edges."

[models.sd15-lineart]
kind = "controlnet"
family = "sd15"
control = "lineart"
source = "hub:lllyasviel/control_v11p_sd15_lineart"
license = "openrail"
description = "ControlNet 1.1 line art."

[models.sd15-scribble]
kind = "controlnet"
family = "sd15"
control = "scribble"
source = "hub:lllyasviel/control_v11p_sd15_scribble"
license = "openrail"
description = "ControlNet 1.1 scribbles."

[models.sd15-pose]
kind = "controlnet"
family = "sd15"
control = "pose"
source = "hub:lllyasviel/control_v11p_sd15_openpose"
license = "openrail"
description = "ControlNet 1.1 OpenPose skeletons."

[models.sd15-shuffle]
kind = "controlnet"
family = "sd15"
control = "shuffle"
source = "hub:lllyasviel/control_v11e_sd15_shuffle"
license = "openrail"
description = "ControlNet 1.1 content shuffle (style transfer)."

[models.sdxl-depth]
kind = "controlnet"
family = "sdxl"
control = "depth"
source = "hub:diffusers/controlnet-depth-sdxl-1.0"
license = "openrail++"
description = "SDXL depth ControlNet."

[models.sdxl-canny]
kind = "controlnet"
family = "sdxl"
control = "canny"
source = "hub:diffusers/controlnet-canny-sdxl-1.0"
license = "openrail++"
description = "SDXL canny ControlNet."

[models.tiny-sd-style]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
license = "Apache-2.0"
description = "Tiny random LoRA for tiny-sd: changes the noise, for tests and demos."

[models.tiny-sdxl-style]
kind = "lora"
family = "sdxl"
source = "tiny:sdxl-lora-style"
license = "Apache-2.0"
description = "Tiny random LoRA for tiny-sdxl."

[models.lcm-lora-sd15]
kind = "lora"
family = "sd15"
source = "hub:latent-consistency/lcm-lora-sdv1-5"
turbo = "lcm"
license = "openrail++"
description = "LCM LoRA for SD1.5 bases: 2–8 steps with the LCM scheduler, guidance 1–2 (the server sets both)."

[models.tiny-sd-lcm]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
turbo = "lcm"
license = "Apache-2.0"
description = "Tiny stand-in for an LCM LoRA (random): sampled as the LCM LoRA is, 2–8 steps. For tests."

[models.tiny-sd-preview]
kind = "preview"
family = "sd15"
source = "tiny:sd15-preview"
license = "Apache-2.0"
description = "Tiny random TAESD-shaped preview decoder."

[models.tiny-sdxl-preview]
kind = "preview"
family = "sdxl"
source = "tiny:sdxl-preview"
license = "Apache-2.0"
description = "Tiny random TAESD-shaped preview decoder."

[models.tiny-sd-ip-adapter]
kind = "ip_adapter"
family = "sd15"
source = "tiny:sd15-ip-adapter"
encoder = "tiny-sd-image-encoder"
license = "Apache-2.0"
description = "Tiny random IP-Adapter for tiny-sd (reference images): changes the noise, for tests."

[models.tiny-sd-image-encoder]
kind = "image_encoder"
family = "sd15"
source = "tiny:sd15-image-encoder"
license = "Apache-2.0"
description = "Tiny random CLIP vision encoder for tiny-sd's IP-Adapter."

[models.tiny-sdxl-ip-adapter]
kind = "ip_adapter"
family = "sdxl"
source = "tiny:sdxl-ip-adapter"
encoder = "tiny-sdxl-image-encoder"
license = "Apache-2.0"
description = "Tiny random IP-Adapter for tiny-sdxl (reference images)."

[models.tiny-sdxl-image-encoder]
kind = "image_encoder"
family = "sdxl"
source = "tiny:sdxl-image-encoder"
license = "Apache-2.0"
description = "Tiny random CLIP vision encoder for tiny-sdxl's IP-Adapter."

[models.sd15-ip-adapter]
kind = "ip_adapter"
family = "sd15"
source = "hub:h94/IP-Adapter"
weight = "models/ip-adapter_sd15.safetensors"
encoder = "sd15-image-encoder"
license = "Apache-2.0"
description = "IP-Adapter for SD1.5: reference images steer the look (the h94 IP-Adapter release)."

[models.sd15-image-encoder]
kind = "image_encoder"
family = "sd15"
source = "hub:h94/IP-Adapter"
weight = "models/image_encoder"
license = "MIT"
description = "OpenCLIP ViT-H-14 (LAION-2B) image encoder for the SD1.5 IP-Adapter, as the h94 release ships it."

[models.sdxl-ip-adapter]
kind = "ip_adapter"
family = "sdxl"
source = "hub:h94/IP-Adapter"
weight = "sdxl_models/ip-adapter_sdxl.safetensors"
encoder = "sdxl-image-encoder"
license = "Apache-2.0"
description = "IP-Adapter for SDXL: reference images steer the look (the h94 IP-Adapter release)."

[models.sdxl-image-encoder]
kind = "image_encoder"
family = "sdxl"
source = "hub:h94/IP-Adapter"
weight = "sdxl_models/image_encoder"
license = "MIT"
description = "OpenCLIP ViT-bigG-14 (LAION-2B) image encoder for the SDXL IP-Adapter, as the h94 release ships it."

[models.taesd]
kind = "preview"
family = "sd15"
source = "hub:madebyollin/taesd"
license = "MIT"
description = "Tiny AutoencoderTiny (TAESD) for fast step previews of SD1.5 latents."

[models.taesdxl]
kind = "preview"
family = "sdxl"
source = "hub:madebyollin/taesdxl"
license = "MIT"
description = "TAESD for SDXL latents: fast step previews."
"""


def builtin_toml(families: tuple[str, ...], controls: tuple[str, ...]) -> str:
    """The built-in registry as TOML text, for :meth:`sfumato.registry.Registry.parse`."""
    tiny_controlnets = "".join(
        # One tiny ControlNet per family and kind (random, built locally), so every control path
        # runs offline; names follow the tiny bases: tiny-sd-depth, tiny-sdxl-canny, …
        f'\n[models.{"tiny-sd" if f == "sd15" else "tiny-sdxl"}-{c}]\nkind = "controlnet"\n'
        f'family = "{f}"\ncontrol = "{c}"\nsource = "tiny:{f}-controlnet-{c}"\n'
        'license = "Apache-2.0"\ndescription = "Tiny random ControlNet for tests and demos."\n'
        for f in families
        for c in controls
    )
    return _BASES + tiny_controlnets + _PARTS
