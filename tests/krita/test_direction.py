"""References and regions through the real plugin in the real Krita (issue 16 item 3), to a
recording peer that announces ``reference`` and ``regions``: two paint layers and a group
as regions with prompts (stored in the document, saved and reopened), a reference layer and
a reference file with their weights and start/end → the job carries each mask at the job's
size and the selection's position, each prompt, each reference picture; the result is
added as for any job."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.sync.server import serve

from sfumato.protocol import Job

from .conftest import KritaEnv
from .test_controls import CAPABILITIES, Recorder, b64


class DirectionRecorder(Recorder):
    @staticmethod
    def note(job: Job) -> dict[str, Any]:
        return {
            **Recorder.note(job),
            "references": [
                (r.weight, r.start, r.end, r.image.to_numpy().copy()) for r in job.references
            ],
            "regions": [(r.prompt, r.mask.to_numpy().copy()) for r in job.regions],
        }


@pytest.fixture
def direction_peer() -> Iterator[DirectionRecorder]:
    rec = DirectionRecorder(capabilities=(*CAPABILITIES, "reference", "regions"))
    with serve(rec.handle, "127.0.0.1", 0, compression=None, max_size=None) as server:
        rec.url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield rec
        server.shutdown()
    thread.join(timeout=10)


def test_region_layers_and_references_reach_the_server(
    krita_env: KritaEnv, direction_peer: DirectionRecorder, tmp_path: Path
) -> None:
    w, h = 128, 96
    rng = np.random.default_rng(16)
    lamp = np.zeros((h, w, 4), np.uint8)
    lamp[:, :64] = (40, 80, 200, 255)
    lamp[30:40, :64, 3] = 128  # a soft band: coverage is kept, not thresholded
    table = np.zeros((h, w, 4), np.uint8)
    table[50:, 64:] = (20, 60, 90, 255)
    wall = np.zeros((h, w, 4), np.uint8)
    wall[:12] = (200, 200, 200, 255)  # inside a group: the group's merged alpha is the mask
    photo = rng.integers(0, 256, (h, w, 4), np.uint8)
    photo[..., 3] = 255
    picture = tmp_path / "look.png"
    Image.new("RGB", (600, 300), (10, 120, 230)).save(picture)
    out = krita_env.run_task(
        "direction",
        {"url": direction_peer.url, "width": w, "height": h, "mode": "generate",
         "prompt": "a room", "seed": 3, "bgra": b64(np.full((h, w, 4), 255, np.uint8)),
         "layers": [{"name": "photo", "bgra": b64(photo), "visible": False},
                    {"name": "lamp", "bgra": b64(lamp)}, {"name": "table", "bgra": b64(table)},
                    {"name": "plaster", "group": "wall", "bgra": b64(wall)}],
         "regions": {"lamp": "a brass lamp", "table": "a walnut table", "wall": "plaster"},
         "references": [{"layer": "photo", "weight": 0.7, "start": 0.0, "end": 0.6},
                        {"path": str(picture), "weight": 1.5, "start": 0.2, "end": 1.0}],
         "selection": [[20, 10, 70, 50, 255]], "context": 4},
        module="direction_tasks",
    )  # fmt: skip
    assert out["reopened"] == {"lamp": "a brass lamp", "table": "a walnut table", "wall": "plaster"}
    assert out["record"]["state"] == "done", out["record"]["message"]
    x, y, rw, rh = out["record"]["region"]
    (job,) = direction_peer.jobs
    params = job["params"]
    assert (params.width, params.height) == (-(-rw // 8) * 8, -(-rh // 8) * 8)
    assert params.prompt == "a room"  # the shared prompt, everywhere no region is
    got = dict(job["regions"])
    assert set(got) == {"a brass lamp", "a walnut table", "plaster"}
    for prompt, layer in (("a brass lamp", lamp), ("a walnut table", table), ("plaster", wall)):
        mask = got[prompt]
        assert mask.shape == (params.height, params.width, 1)
        np.testing.assert_array_equal(mask[:rh, :rw, 0], layer[y : y + rh, x : x + rw, 3])
        assert not mask[rh:].any() and not mask[:, rw:].any()
    (w0, s0, e0, from_layer), (w1, s1, e1, from_file) = job["references"]
    assert (w0, s0, e0) == (0.7, 0.0, 0.6)
    np.testing.assert_array_equal(from_layer, photo[..., 2::-1])  # BGRA → RGB, whole canvas
    assert (w1, s1, e1) == (1.5, 0.2, 1.0)
    assert from_file.shape == (256, 512, 3)  # scaled to the reference size, aspect kept
    assert (np.abs(from_file.astype(int) - (10, 120, 230)) <= 1).all()
    group = next(n for n in out["after"]["tree"] if n["name"] == "Sfumato")
    assert len(group["children"]) == 1  # the result is added as for any job
    assert out["after"]["history"][-1]["regions"] == [[p, ""] for p, _ in job["regions"]]


def test_the_docker_edits_region_prompts_in_the_document(krita_env: KritaEnv) -> None:
    out = krita_env.run_task("direction_box", {"prompt": "a brass lamp"}, module="direction_tasks")
    assert out["stored"] == {out["layer_id"]: "a brass lamp"}
    assert out["listed"] == ["lamp: a brass lamp"]
    assert out["after_clear"] == {} and out["listed_after_clear"] == 0  # blank: not a region
    assert out["reference"] == [out["layer_id"], 0.4, 0.0, 1.0]


def test_the_docker_keeps_a_references_kind_and_a_regions_negative(krita_env: KritaEnv) -> None:
    """Kinds picked in each reference row's combo and a negative typed for the active layer
    survive save/close/reopen, show again in the docker, and are what the job carries: each
    reference's ``kind`` (absent for "Reference") and each region's ``negative``."""
    w, h = 64, 48
    rng = np.random.default_rng(22)
    photo = rng.integers(0, 256, (h, w, 4), np.uint8)
    photo[..., 3] = 255
    lamp = np.zeros((h, w, 4), np.uint8)
    lamp[:, :32] = (40, 80, 200, 255)
    table = np.zeros((h, w, 4), np.uint8)
    table[24:, 32:] = (20, 60, 90, 255)
    out = krita_env.run_task(
        "direction_fields",
        {"width": w, "height": h, "bgra": b64(np.full((h, w, 4), 255, np.uint8)),
         "layers": {"photo": b64(photo), "lamp": b64(lamp), "table": b64(table)},
         "regions": {"lamp": ["a brass lamp", "rust, dents"], "table": ["a walnut table", ""]},
         "references": [["photo", "Style"], ["photo", "Composition"], ["lamp", "Reference"]],
         "show": "lamp"},
        module="direction_tasks",
    )  # fmt: skip
    assert out["offered"] == ["Reference", "Style", "Composition"]
    # a layer that is not a region yet shows blank fields: the lamp's negative typed just
    # before is not left in the field for the table
    assert out["shown"] == {"lamp": ["", ""], "table": ["", ""]}
    assert out["followed"] == ["a brass lamp", "rust, dents"]  # the lamp made active again
    texts = {"lamp": ["a brass lamp", "rust, dents"], "table": ["a walnut table", ""]}
    assert out["before"] == texts
    got = out["reopened"]
    assert got["texts"] == texts  # from the reopened .kra's annotation
    assert got["fields"] == ["a brass lamp", "rust, dents"]  # the active layer's, in the box
    assert sorted(got["listed"]) == [
        ["lamp: a brass lamp", "negative: rust, dents"],
        ["table: a walnut table", ""],
    ]
    kinds = [["photo", "Style"], ["photo", "Composition"], ["lamp", "Reference"]]
    assert got["rows"] == kinds
    assert got["settings"] == [["photo", "style"], ["photo", "content"], ["lamp", None]]
    # the list is the image's own, in its .kra: a new docker (Krita restarted) finds it there,
    # another image starts with none (untouched), and coming back shows this one's again
    weighted = [[name, kind, [0.4, 0.7, 1.0][n]] for n, (name, kind) in enumerate(kinds)]
    assert out["restarted"] == {"rows": weighted, "settings": 3, "other": [0, 0, False],
                                "first": [False, False], "back": weighted}  # fmt: skip
    job = out["job"]
    assert job["size"] == [w, 64]  # the canvas, its height padded to the smallest side sent
    assert [k for k, _, _ in job["references"]] == ["style", "content", None]
    pictures = [
        np.frombuffer(base64.b64decode(p), np.uint8).reshape(shape)
        for _, shape, p in job["references"]
    ]
    np.testing.assert_array_equal(pictures[0], photo[..., 2::-1])  # the layer, whole canvas
    np.testing.assert_array_equal(pictures[1], photo[..., 2::-1])
    assert sorted(map(tuple, job["regions"])) == [
        ("a brass lamp", "rust, dents"),
        ("a walnut table", ""),
    ]
