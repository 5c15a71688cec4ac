"""``sfumato generate`` conditioning flags: parsing (with the files they name) and real runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfumato.cli.conditioning import parse_control, parse_expand, parse_lora
from sfumato.protocol import ControlKind, DType, LoraRef

from .test_cli import sfumato


def test_control_specs_parse_with_strength_and_preprocess(tmp_path: Path) -> None:
    depth = np.linspace(1, 3, 16, dtype=np.float64).reshape(4, 4)
    np.save(tmp_path / "z.npy", depth)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "edges.png")
    c = parse_control(f"depth={tmp_path / 'z.npy'}:0.6")
    assert c.kind is ControlKind.DEPTH and c.strength == 0.6 and not c.preprocess
    assert c.image.dtype is DType.FLOAT32 and c.image.shape == (4, 4, 1)
    assert np.allclose(c.image.to_numpy()[:, :, 0], depth)
    p = parse_control(f"canny+pre={tmp_path / 'edges.png'}")
    assert p.kind is ControlKind.CANNY and p.preprocess and p.strength == 1.0
    assert p.image.dtype is DType.UINT8


def test_normals_from_an_exr(tmp_path: Path) -> None:
    import OpenEXR as openexr  # a server dependency (the server extra): never optional here

    normals = np.zeros((4, 4, 3), np.float32)
    normals[..., 2] = 1
    path = tmp_path / "n.exr"
    channels = {name: normals[..., i].copy() for i, name in enumerate("XYZ")}
    with openexr.File({"compression": openexr.NO_COMPRESSION}, channels) as exr:
        exr.write(str(path))
    c = parse_control(f"normal={path}")
    assert c.image.shape == (4, 4, 3) and np.array_equal(c.image.to_numpy(), normals)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("fog=a.png", "unknown kind 'fog'"),
        ("depth", "KIND=PATH"),
        ("depth=/no/such.npy", "does not exist"),
    ],
)
def test_bad_control_specs_say_what_to_write(text: str, words: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=words):
        parse_control(text)


def test_lora_and_expand_specs() -> None:
    assert parse_lora("style:0.5") == LoraRef("style", 0.5)
    assert parse_lora("style") == LoraRef("style", 1.0)
    assert parse_expand("0,8,16,24") == (0, 8, 16, 24)
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,-4"):
        with pytest.raises(argparse.ArgumentTypeError, match="left,top,right,bottom"):
            parse_expand(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="weight"):
        parse_lora("style:heavy")


def test_generate_with_depth_lora_and_tiling(server, tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.tile(np.linspace(1, 4, 64, dtype=np.float32), (64, 1)))
    common = ["generate", "--url", server.url, "--prompt", "x", "--width", "64", "--height", "64",
              "--steps", "3", "--seed", "2"]  # fmt: skip
    plain = sfumato(*common, "--out", str(tmp_path / "plain.png"))
    ruled = sfumato(*common, "--control", f"depth={tmp_path / 'z.npy'}:0.8", "--lora",
                    "tiny-sd-style:0.7", "--tile", "xy", "--out", str(tmp_path / "ruled.png"))  # fmt: skip
    assert plain.returncode == 0 and ruled.returncode == 0, ruled.stderr
    a, b = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in ("plain", "ruled"))
    assert a.shape == b.shape == (64, 64, 3) and not np.array_equal(a, b)


def test_outpaint_and_upscale_from_the_command_line(server, tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)).save(
        tmp_path / "in.png"
    )
    common = ["generate", "--url", server.url, "--prompt", "x", "--image", str(tmp_path / "in.png"),
              "--steps", "4", "--seed", "1"]  # fmt: skip
    grown = sfumato(*common, "--expand", "8,0,8,0", "--out", str(tmp_path / "wide.png"))
    big = sfumato(*common, "--task", "upscale", "--scale", "2", "--out", str(tmp_path / "big.png"))
    assert grown.returncode == 0 and big.returncode == 0, grown.stderr + big.stderr
    assert Image.open(tmp_path / "wide.png").size == (80, 48)
    assert Image.open(tmp_path / "big.png").size == (128, 96)


def test_bad_flag_is_a_usage_error_with_the_fix(tmp_path: Path) -> None:
    proc = sfumato(
        "generate", "--prompt", "x", "--out", str(tmp_path / "o.png"), "--control", "fog=x.png"
    )
    assert proc.returncode == 2 and "unknown kind 'fog'" in proc.stderr
