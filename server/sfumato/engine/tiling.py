"""Seamless tiling: convolutions that wrap around the image edges, for one job at a time.

A texture tiles when its left edge continues into its right edge (and top into bottom). The
UNet, the VAE and the ControlNets see the latent/image only through convolutions (attention
and group norms are position-free), so padding every Conv2d circularly instead of with zeros
makes the whole pipeline wrap: shifting the starting noise shifts the image, nothing else.

- ``xy`` wraps both axes (textures, materials).
- ``x`` wraps left ↔ right only (360° panoramas): the sky and the ground must not meet, so
  the vertical padding stays zeros. torch's ``padding_mode`` applies to both axes, so each
  conv pads by hand (circular on x, zeros on y) and runs with padding 0.

:func:`tiled` patches the modules in place and restores them on exit, even after an error
or a cancel, so tiling never leaks into the next job (the modules are shared by every
pipeline derived from the base).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ..protocol.conditioning import Tile


def tiled(modules: Iterable[Any], tile: Tile) -> contextlib.AbstractContextManager[None]:
    """Context in which every padded Conv2d inside ``modules`` wraps as ``tile`` says."""
    if tile is Tile.NONE:
        return contextlib.nullcontext()
    return _wrapping([m for m in modules if isinstance(m, torch.nn.Module)], tile)


@contextlib.contextmanager
def _wrapping(modules: list[torch.nn.Module], tile: Tile) -> Iterator[None]:
    convs = {
        id(m): m
        for module in modules
        for m in module.modules()
        if isinstance(m, torch.nn.Conv2d) and any(p > 0 for p in _pairs(m.padding))
    }
    saved = [(conv, conv.padding, conv.padding_mode) for conv in convs.values()]
    try:
        for conv, padding, _mode in saved:
            py, px = _pairs(padding)
            conv.padding = (0, 0)
            conv._conv_forward = _wrapped_forward(conv, px, py, tile)  # type: ignore[method-assign]
        yield
    finally:
        for conv, padding, mode in saved:
            conv.padding, conv.padding_mode = padding, mode
            conv.__dict__.pop("_conv_forward", None)


def _wrapped_forward(conv: torch.nn.Conv2d, px: int, py: int, tile: Tile) -> Any:
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = F.pad(x, (px, px, 0, 0), mode="circular")
        x = F.pad(x, (0, 0, py, py), mode="circular" if tile is Tile.XY else "constant")
        return F.conv2d(x, weight, bias, conv.stride, 0, conv.dilation, conv.groups)

    return forward


def _pairs(padding: Any) -> tuple[int, int]:
    if isinstance(padding, str):  # "same"/"valid": never used by diffusers' 2-D models
        return (0, 0)
    if isinstance(padding, int):
        return (padding, padding)
    return (int(padding[0]), int(padding[1]))
