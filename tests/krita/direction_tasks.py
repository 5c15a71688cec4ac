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
from krita_tasks import b64, connect, describe, new_doc, record_info, run_job, select, task
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


@task
def direction_box(p: dict[str, Any]) -> dict[str, Any]:
    """The docker's region and reference widgets on a real document: type a prompt for the
    active layer, list it, clear it; add a reference layer row and change its weight."""
    from sfumato_krita.directionbox import DirectionBox
    from sfumato_krita.model import Settings

    doc = new_doc(64, 64)
    layer = doc.createNode("lamp", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    settings = Settings()  # no window here: the box is told the document and its layer
    box = DirectionBox(settings, lambda: canvas.layers(doc), lambda: doc, lambda: layer)
    box.region_prompt.setText(p["prompt"])
    box.store_region()
    stored = {k: t.prompt for k, t in directioncanvas.read_texts(doc).items()}
    listed = [box.regions.item(i).text() for i in range(box.regions.count())]
    box.add_reference(ReferenceLayer())
    box._rows[0].layer.setCurrentIndex(box._rows[0].layer.findData(canvas.node_id(layer)))
    box._rows[0].weight.setValue(0.4)
    box.region_prompt.setText("")
    box.store_region()
    ref = settings.references[0]
    return {
        "stored": stored,
        "layer_id": canvas.node_id(layer),
        "listed": listed,
        "after_clear": {k: t.prompt for k, t in directioncanvas.read_texts(doc).items()},
        "listed_after_clear": box.regions.count(),
        "reference": [ref.layer_id, ref.weight, ref.start, ref.end],
    }


@task
def direction_fields(p: dict[str, Any]) -> dict[str, Any]:
    """Each reference's kind and a region's negative typed into the docker's own widgets (keys
    and combo choices, as an artist does), the document saved as .kra, closed and reopened;
    then the box shows them again and the job it feeds is built (not sent) and decoded."""
    from PyQt5.QtTest import QTest
    from PyQt5.QtWidgets import QPushButton
    from sfumato_krita._vendor.sfumato.protocol import Limits, decode_client_message, encode_bytes
    from sfumato_krita.directionbox import FOLLOW_MS, DirectionBox
    from sfumato_krita.jobs import build_job
    from sfumato_krita.model import Settings
    from sfumato_krita.qt import Qt

    w, h = p["width"], p["height"]
    doc = new_doc(w, h, base64.b64decode(p["bgra"]))
    ids = {}
    for name, bgra in p["layers"].items():
        layer = doc.createNode(name, "paintlayer")
        doc.rootNode().addChildNode(layer, None)
        layer.setPixelData(base64.b64decode(bgra), 0, 0, w, h)
        ids[name] = canvas.node_id(layer)
    doc.refreshProjection()
    here = {"doc": doc, "node": None}  # what the active view would answer
    settings = Settings(prompt="a room")
    box = DirectionBox(settings, lambda: canvas.layers(here["doc"]), lambda: here["doc"],
                       lambda: here["node"])  # fmt: skip

    def type_into(field: Any, text: str) -> None:
        field.selectAll()
        QTest.keyClicks(field, text)
        QTest.keyClick(field, Qt.Key_Return)  # Enter: editingFinished, as in the docker

    shown = {}
    for name, (prompt, negative) in p["regions"].items():
        here["node"] = canvas.find_node(doc, ids[name])
        box.refresh()  # the active layer changed: its fields (blank: not a region yet)
        shown[name] = [box.region_prompt.text(), box.region_negative.text()]
        type_into(box.region_prompt, prompt)
        if negative:
            type_into(box.region_negative, negative)
    here["node"] = canvas.find_node(doc, ids[p["show"]])  # picked in the Layers docker:
    QTest.qWait(4 * FOLLOW_MS)  # no refresh called, the box's own timer notices
    followed = [box.region_prompt.text(), box.region_negative.text()]
    add = next(b for b in box.findChildren(QPushButton) if b.text() == "Add reference layer")
    for name, kind in p["references"]:
        add.click()
        row = box._rows[-1]
        row.layer.setCurrentIndex(row.layer.findData(ids[name]))
        row.kind.setCurrentIndex(row.kind.findText(kind))
    box._rows[0].weight.setValue(0.4)  # typed into the first row's weight
    offered = [box._rows[0].kind.itemText(i) for i in range(box._rows[0].kind.count())]
    before = {k: [t.prompt, t.negative] for k, t in directioncanvas.read_texts(doc).items()}

    path = os.path.join(os.path.dirname(p["out"]), "fields.kra")
    assert doc.saveAs(path), "Krita could not save the test document"
    box._rows[1].weight.setValue(0.7)  # an edit after Save As goes with the next save
    assert doc.save(), "Krita could not save the test document again"
    here["doc"] = here["node"] = None  # no image is active while it is closed and reopened
    doc.close()
    doc = Krita.instance().openDocument(path)
    doc.setBatchmode(True)
    names = {canvas.node_id(n): n.name() for n in canvas.walk(doc.rootNode())}
    here["doc"] = doc
    here["node"] = canvas.find_node(doc, ids[p["show"]])
    box.refresh()  # what the docker does when the reopened image's view becomes active
    reopened = {
        "fields": [box.region_prompt.text(), box.region_negative.text()],
        "listed": [
            [box.regions.item(i).text(), box.regions.item(i).toolTip()]
            for i in range(box.regions.count())
        ],
        "rows": [[names.get(r.layer.currentData(), "?"), r.kind.currentText()] for r in box._rows],
        "settings": [
            [names.get(r.layer_id, "?"), r.kind.value if r.kind else None]
            for r in settings.references
        ],
        "texts": {
            names.get(k, k): [t.prompt, t.negative]
            for k, t in directioncanvas.read_texts(doc).items()
        },
    }
    # Krita restarted: a new docker with nothing in memory finds the list in the image; another
    # image has a list of its own (none yet: empty), and coming back brings this one's again
    fresh = Settings(prompt="a room")
    again = DirectionBox(fresh, lambda: canvas.layers(here["doc"]), lambda: here["doc"],
                         lambda: here["node"])  # fmt: skip

    def rows_of(b: Any) -> list[list[Any]]:
        return [[names.get(r.layer.currentData(), "?"), r.kind.currentText(),
                 round(r.weight.value(), 3)] for r in b._rows]  # fmt: skip

    restarted = {"rows": rows_of(again), "settings": len(fresh.references)}
    other = new_doc(w, h)
    here["doc"], here["node"] = other, None
    again.refresh()
    restarted["other"] = [len(again._rows), len(fresh.references), other.modified()]
    blank = new_doc(w, h)  # the first image a docker with an empty list meets: untouched
    DirectionBox(Settings(), lambda: canvas.layers(blank), lambda: blank, lambda: None)
    restarted["first"] = [blank.modified(), "sfumato/references" in blank.annotationTypes()]
    blank.close()
    here["doc"] = doc
    here["node"] = canvas.find_node(doc, ids[p["show"]])
    again.refresh()
    restarted["back"] = rows_of(again)
    other.setModified(False)
    other.close()
    inp = canvas.read_input(doc, fresh)
    job = build_job(fresh.request(), inp, ("generate", "reference", "regions"), "fields")
    back = decode_client_message(encode_bytes(job), Limits())
    return {
        "ids": ids,
        "shown": shown,
        "followed": followed,
        "offered": offered,
        "before": {names.get(k, k): v for k, v in before.items()},
        "reopened": reopened,
        "restarted": restarted,
        "job": {
            "references": [
                [r.kind.value if r.kind else None, list(r.image.shape), b64(r.image.data)]
                for r in back.references
            ],
            "regions": [[r.prompt, r.negative] for r in back.regions],
            "size": [back.params.width, back.params.height],
        },
    }
