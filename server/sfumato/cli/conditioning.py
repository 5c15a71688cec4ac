"""``sfumato generate`` conditioning flags: controls, LoRAs, tiling, outpaint and upscale.

Kept out of generate.py so that the command stays a readable list of flags. Syntax:

- ``--control KIND=PATH[:STRENGTH]`` (repeatable): a ready control map (uint8 PNG) or, for
  ``depth`` and ``normal``, float data (``.npy`` as is; ``.exr`` through the OpenEXR package).
  ``KIND+pre=PATH`` runs the server's detector for KIND on the picture first (``canny+pre=
  photo.png``). Depth is linear distance from the camera plane, normals are camera-space unit
  vectors, x right, y up, z toward the camera (docs/protocol.md, "Conditioning").
- ``--lora NAME[:WEIGHT]`` (repeatable), ``--tile none|xy|x``, ``--expand L,T,R,B`` (outpaint),
  ``--scale N`` (upscale), ``--preview-every N``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol import Array, Control, ControlKind, LoraRef, SfumatoError, Tile


class FlagError(SfumatoError, argparse.ArgumentTypeError):
    """A flag value that cannot be used. argparse turns it into a usage error naming the flag
    (exit 2); being a SfumatoError it is also part of the one tree (sfumato.protocol.errors)."""


# What --strength means when it is not given: upscale re-details (low), outpaint fills new
# margins from scratch (full), the others keep the protocol's default.
DEFAULT_STRENGTH = {"upscale": 0.3, "outpaint": 1.0}
TASKS = ("generate", "refine", "inpaint", "outpaint", "upscale")


def add_arguments(g: argparse.ArgumentParser) -> None:
    kinds = "|".join(k.value for k in ControlKind)
    g.add_argument(
        "--control", action="append", default=[], type=parse_control, metavar="KIND=PATH[:S]",
        help=f"a control ({kinds}); KIND+pre= runs the detector first; PATH .png/.npy/.exr",
    )  # fmt: skip
    g.add_argument(
        "--lora", action="append", default=[], type=parse_lora, metavar="NAME[:WEIGHT]",
        help="a LoRA by registry name, weight 1 by default (repeatable)",
    )  # fmt: skip
    g.add_argument("--tile", choices=[t.value for t in Tile], default="none",
                   help="seamless: xy (textures) or x (panoramas)")  # fmt: skip
    g.add_argument("--expand", type=parse_expand, metavar="L,T,R,B",
                   help="outpaint margins in pixels")  # fmt: skip
    g.add_argument("--scale", type=int, default=2, help="upscale factor (2–4)")
    g.add_argument("--preview-every", type=int, default=0, help="a preview every N steps")


def params(args: argparse.Namespace, task: str) -> dict[str, Any]:
    """The JobParams keywords these flags set."""
    out: dict[str, Any] = {
        "loras": tuple(args.lora),
        "tile": Tile(args.tile),
        "scale": args.scale,
        "preview_every": args.preview_every,
        "strength": args.strength
        if args.strength is not None
        else DEFAULT_STRENGTH.get(task, 0.75),
    }
    if args.expand is not None:
        out["expand"] = args.expand
    return out


def parse_control(text: str) -> Control:
    """``KIND[+pre]=PATH[:STRENGTH]`` → Control; argparse shows the message on error."""
    head, sep, tail = text.partition("=")
    kind_name, _plus, flag = head.partition("+")
    try:
        kind = ControlKind(kind_name.strip())
    except ValueError:
        kinds = ", ".join(k.value for k in ControlKind)
        raise FlagError(
            f"--control {text!r}: unknown kind {kind_name!r}; use one of {kinds}"
        ) from None
    if not sep or flag not in ("", "pre"):
        raise FlagError(
            f"--control {text!r}: write KIND=PATH[:STRENGTH] or KIND+pre=PATH (e.g. depth=z.npy)"
        )
    path_text, strength = tail, 1.0
    prefix, colon, last = tail.rpartition(":")
    if colon and prefix:
        try:
            strength = float(last)
            path_text = prefix
        except ValueError:
            pass  # a ':' inside the path
    image = read_control(Path(path_text), kind)
    return Control(kind, Array.from_numpy(image), strength=strength, preprocess=flag == "pre")


def parse_lora(text: str) -> LoraRef:
    name, colon, weight = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        return LoraRef(name, float(weight)) if colon else LoraRef(text)
    except ValueError:
        raise FlagError(
            f"--lora {text!r}: the weight after ':' must be a number, e.g. style:0.8"
        ) from None


def parse_expand(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise FlagError(
            f"--expand {text!r}: give four pixel counts left,top,right,bottom, e.g. 0,0,256,0"
        )
    return (values[0], values[1], values[2], values[3])


def read_control(path: Path, kind: ControlKind) -> np.ndarray:
    """The array a control file holds: uint8 from images, float32 from .npy and .exr."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FlagError(f"--control: {path} does not exist")
    if suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    elif suffix == ".exr":
        data = _read_exr(path, kind)
    else:
        from ..imageio import read_image

        return read_image(path)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.dtype.kind == "f":
        data = data.astype(np.float32)
    return np.ascontiguousarray(data)


def _read_exr(path: Path, kind: ControlKind) -> np.ndarray:
    try:
        import OpenEXR
    except ImportError:
        raise FlagError(
            f"--control: reading {path.name} needs the OpenEXR package (pip install OpenEXR); "
            "or save the pass as .npy"
        ) from None
    with OpenEXR.File(str(path)) as exr:
        channels = {name: ch.pixels for part in exr.parts for name, ch in part.channels.items()}
    short = {name.rsplit(".", 1)[-1]: pixels for name, pixels in channels.items()}
    if kind is ControlKind.NORMAL:
        if "RGB" in short:  # OpenEXR merges R, G, B into one H×W×3 channel
            return np.asarray(short["RGB"], np.float32)
        for names in (("X", "Y", "Z"), ("R", "G", "B")):
            if all(n in short for n in names):
                return np.stack([short[n] for n in names], axis=-1).astype(np.float32)
    for name in ("Z", "Depth", "V", "Y", "R"):
        if name in short and short[name].ndim == 2:
            return short[name].astype(np.float32)
    raise FlagError(
        f"--control: {path.name} has channels {', '.join(channels)}; expected Z (depth) "
        "or X,Y,Z / R,G,B (normals)"
    )
