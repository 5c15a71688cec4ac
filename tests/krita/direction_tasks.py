"""References and regions inside real Krita (``kritarunner -s direction_tasks -f direction``;
tests/krita/test_direction.py judges what this writes). The region prompts are stored,
the document is saved as .kra, closed and reopened, and the job runs on the reopened one:
what is sent is what survived the file.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from krita import Krita
from krita_tasks import connect, describe, new_doc, record_info, run_job, select, task
from sfumato_krita import canvas, directioncanvas
from sfumato_krita.direction import ReferenceLayer, set_region


@task
def direction(p: dict[str, Any]) -> dict[str, Any]:
    w, h = p["width"], p["height"]
    doc = new_doc(w, h, base64.b64decode(p["bgra"]))
    ids = {}
    for spec in p["layers"]:
        parent = doc.rootNode()
        if spec.get("group"):
            parent = doc.createGroupLayer(spec["group"])
            doc.rootNode().addChildNode(parent, None)
            ids[spec["group"]] = canvas.node_id(parent)
        layer = doc.createNode(spec["name"], "paintlayer")
        parent.addChildNode(layer, None)
        layer.setPixelData(base64.b64decode(spec["bgra"]), 0, 0, w, h)
        layer.setVisible(spec.get("visible", True))
        ids[spec["name"]] = canvas.node_id(layer)
    texts: dict[str, Any] = {}
    for name, prompt in p["regions"].items():
        texts = set_region(texts, ids[name], prompt)
    directioncanvas.write_texts(doc, texts)
    path = os.path.join(os.path.dirname(p["out"]), "regions.kra")
    assert doc.saveAs(path), "Krita could not save the test document"
    doc.close()
    doc = Krita.instance().openDocument(path)
    doc.setBatchmode(True)
    names = {canvas.node_id(n): n.name() for n in canvas.walk(doc.rootNode())}
    by_name = {v: k for k, v in names.items()}
    reopened = {names.get(k, k): t.prompt for k, t in directioncanvas.read_texts(doc).items()}
    if p.get("selection"):
        select(doc, p["selection"])
    session, client, controller = connect(p)
    session.settings.context = p.get("context", 32)
    for ref in p["references"]:
        session.settings.references.append(
            ReferenceLayer(by_name.get(ref.get("layer", ""), ""), ref.get("path", ""),
                           ref["weight"], ref["start"], ref["end"])
        )  # fmt: skip
    record = run_job(controller, client, doc)
    client.close()
    return {
        "record": record_info(record),
        "notice": session.message,
        "reopened": reopened,
        "after": describe(doc),
    }
