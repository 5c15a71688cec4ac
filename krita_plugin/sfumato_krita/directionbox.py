"""The docker's references and regions (issue 16 item 3), as krita-ai-diffusion users expect:
references sit in a list like the control layers (a layer or a picture file, its kind —
Reference, Style or Composition —, a weight, a start and an end), regions come from the
layer stack (pick a paint layer or a group, type its prompt and, if it needs one, its
negative). Widgets only: references live in ``Settings.references``, region prompts and
negatives in the document (``directioncanvas``), so they are saved with the .kra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from krita import Krita

from sfumato.hostdirection import RegionText

from . import canvas, directioncanvas
from .direction import KINDS, ReferenceLayer, kind_of, kind_value, region_fields, set_region
from .model import Settings
from .qt import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    Qt,
    QTimer,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

Choices = Callable[[], list[tuple[str, str]]]
FOLLOW_MS = 250  # how often the region fields look whether the active layer changed


class ReferenceRow(QWidget):
    """One reference: its layer (or file), kind, weight, start and end."""

    def __init__(self, ref: ReferenceLayer, choices: list[tuple[str, str]], remove: Any,
                 changed: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        super().__init__()
        self.ref = ref
        self._changed = changed  # the box keeps the list with the document
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.layer = QComboBox()
        self.kind = QComboBox()
        for n, kind in enumerate(KINDS):
            self.kind.addItem(kind.label, kind.value)
            self.kind.setItemData(n, kind.tip, Qt.ToolTipRole)
        self.kind.setCurrentIndex(max(0, self.kind.findData(kind_value(ref.kind))))
        self.kind.setToolTip("what the picture steers: Reference all of it, Style the look, "
                             "Composition the layout")  # fmt: skip
        self.weight = _spin(ref.weight, 2.0, "weight: how strongly the picture steers (0 … 2)")
        self.start = _spin(ref.start, 1.0, "start: from this fraction of the steps")
        self.end = _spin(ref.end, 1.0, "end: until this fraction of the steps")
        drop = QToolButton(text="✕")
        drop.clicked.connect(lambda: remove(self))
        source: QWidget = self.layer
        if ref.path:
            source = QLabel(ref.path.rsplit("/", 1)[-1])
            source.setToolTip(ref.path)
        for widget in (source, self.kind, self.weight, self.start, self.end, drop):
            row.addWidget(widget)
        row.setStretch(0, 1)
        self.set_layers(choices)
        self.layer.currentIndexChanged.connect(self._store)
        self.kind.currentIndexChanged.connect(self._store)
        for spin in (self.weight, self.start, self.end):
            spin.valueChanged.connect(self._store)

    def set_layers(self, choices: list[tuple[str, str]]) -> None:
        if self.ref.path:
            return
        self.layer.blockSignals(True)
        self.layer.clear()
        for layer_id, name in choices:
            self.layer.addItem(name, layer_id)
        self.layer.setCurrentIndex(max(0, self.layer.findData(self.ref.layer_id)))
        self.layer.blockSignals(False)
        self._store()

    def _store(self) -> None:
        if not self.ref.path:
            self.ref.layer_id = self.layer.currentData() or ""
        self.ref.kind = kind_of(self.kind.currentData())
        self.ref.weight = self.weight.value()
        self.ref.start = self.start.value()
        self.ref.end = self.end.value()
        self._changed()


def _spin(value: float, top: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox(minimum=0.0, maximum=top, singleStep=0.1, value=value)
    spin.setToolTip(tip)
    return spin


class DirectionBox(QWidget):
    """References (a list) and regions (the active layer's prompt, and every region)."""

    def __init__(self, settings: Settings, choices: Choices,
                 document: Callable[[], Any] | None = None,
                 active_node: Callable[[], Any] | None = None) -> None:  # fmt: skip
        """``document`` and ``active_node`` default to the active view's (a test without a
        window passes its own)."""
        super().__init__()
        self.settings, self._choices = settings, choices
        self._document = document or (lambda: Krita.instance().activeDocument())
        self._active = active_node or (lambda: _active_node(self._document()))
        self._rows: list[ReferenceRow] = []
        self._doc_key: str | None = None  # the image the reference list belongs to
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.references = QVBoxLayout()
        box.addWidget(QLabel("References (kind, weight, start, end)"))
        box.addLayout(self.references)
        buttons = QHBoxLayout()
        add_layer, add_file = QPushButton("Add reference layer"), QPushButton("Add file…")
        add_layer.clicked.connect(lambda: self.add_reference(ReferenceLayer()))
        add_file.clicked.connect(self._pick_file)
        buttons.addWidget(add_layer)
        buttons.addWidget(add_file)
        box.addLayout(buttons)
        self.use_regions = QCheckBox("Regions: a prompt per layer")
        self.use_regions.setToolTip(
            "each layer or group with a prompt conditions only where it has pixels; "
            "the main prompt applies everywhere else"
        )
        self.use_regions.setChecked(settings.regions)
        self.use_regions.toggled.connect(lambda on: setattr(self.settings, "regions", on))
        box.addWidget(self.use_regions)
        edit = QHBoxLayout()
        self.region_prompt = QLineEdit(placeholderText="prompt for the active layer's area")
        self.region_negative = QLineEdit(placeholderText="its negative (optional)")
        self.region_negative.setToolTip(
            "what this area should not show (the main negative applies everywhere too)"
        )
        for field in (self.region_prompt, self.region_negative):
            field.editingFinished.connect(self.store_region)
            edit.addWidget(field)
        edit.setStretch(0, 2)
        edit.setStretch(1, 1)
        box.addLayout(edit)
        self.regions = QListWidget()
        self.regions.setMaximumHeight(80)
        self.regions.itemClicked.connect(self._select_region)
        box.addWidget(self.regions)
        self._shown = ""  # the layer whose region the two fields show
        self.refresh()
        # Krita's API has no signal for the active layer: one look at its id every FOLLOW_MS
        self._follow = QTimer(self, interval=FOLLOW_MS)
        self._follow.timeout.connect(self.follow_active)
        self._follow.start()

    def add_reference(self, ref: ReferenceLayer) -> None:
        self.settings.references.append(ref)
        self._add_row(ref)
        self._keep_references()

    def _add_row(self, ref: ReferenceLayer) -> None:
        row = ReferenceRow(ref, self._choices(), self._remove, self._keep_references)
        self._rows.append(row)
        self.references.addWidget(row)

    def _keep_references(self) -> None:
        """The list as it is now goes into the active image's annotation (its .kra)."""
        doc = self._document()
        if doc is not None and self._doc_key == _doc_key(doc):
            directioncanvas.store_references(doc, self.settings.references)

    def _follow_document(self, doc: Any) -> None:
        """Another image became active: show its own reference list (stored with it). One
        that has none starts empty — but the list made while no image was open goes to the
        first image that opens."""
        key = _doc_key(doc) if doc is not None else None
        if key == self._doc_key:
            return
        stored = directioncanvas.stored_references(doc) if doc is not None else None
        had_image, self._doc_key = self._doc_key is not None, key
        if stored is None and not had_image:
            self._keep_references()
            return
        for row in self._rows:
            row.deleteLater()
        self._rows = []
        self.settings.references[:] = stored or []  # the list Settings holds, kept
        for ref in self.settings.references:
            self._add_row(ref)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference picture", "",
                                              "Pictures (*.png *.jpg *.jpeg *.webp *.bmp)")  # fmt: skip
        if path:
            self.add_reference(ReferenceLayer(path=path))

    def _remove(self, row: ReferenceRow) -> None:
        self.settings.references.remove(row.ref)
        self._rows.remove(row)
        row.deleteLater()
        self._keep_references()

    def store_region(self) -> None:
        """The typed prompt and negative become the active layer's region (a blank prompt:
        not a region). A negative typed before the prompt waits in its field."""
        doc, node = self._document(), self._active()
        if doc is None or node is None:
            return
        texts = directioncanvas.read_texts(doc)
        layer_id = canvas.node_id(node)
        prompt, negative = self.region_prompt.text(), self.region_negative.text()
        if texts.get(layer_id, None) is None and not prompt.strip():
            return
        if region_fields(texts, layer_id) != (prompt, negative):  # unchanged: not modified
            directioncanvas.write_texts(doc, set_region(texts, layer_id, prompt, negative))
        self.refresh()

    def _select_region(self, item: QListWidgetItem) -> None:
        doc = self._document()
        node = canvas.find_node(doc, item.data(Qt.UserRole)) if doc is not None else None
        if node is not None:
            doc.setActiveNode(node)
            self.region_prompt.setText(item.data(Qt.UserRole + 1))
            self.region_negative.setText(item.data(Qt.UserRole + 2))

    def refresh(self) -> None:
        """Offer the active image's layers, list its regions and show the active layer's
        (a view changed, or a region was stored)."""
        doc = self._document()
        self._follow_document(doc)
        choices = self._choices()
        for row in self._rows:
            row.set_layers(choices)
        self.regions.clear()
        texts = directioncanvas.read_texts(doc) if doc is not None else {}
        for layer_id, name in choices:
            if layer_id in texts:
                text = texts[layer_id]
                item = QListWidgetItem(f"{name}: {text.prompt}")
                item.setData(Qt.UserRole, layer_id)
                item.setData(Qt.UserRole + 1, text.prompt)
                item.setData(Qt.UserRole + 2, text.negative)
                if text.negative:
                    item.setToolTip(f"negative: {text.negative}")
                self.regions.addItem(item)
        self._show(texts, self._active_id(doc))

    def follow_active(self) -> None:
        """Another layer became active (in the Layers docker, say): the fields show its
        region — unless the artist is typing in one of them."""
        doc = self._document()
        layer_id = self._active_id(doc)
        typing = self.region_prompt.hasFocus() or self.region_negative.hasFocus()
        if layer_id != self._shown and not typing:
            self._show(directioncanvas.read_texts(doc) if doc is not None else {}, layer_id)

    def _active_id(self, doc: Any) -> str:
        node = self._active() if doc is not None else None
        return canvas.node_id(node) if node is not None else ""

    def _show(self, texts: dict[str, RegionText], layer_id: str) -> None:
        self._shown = layer_id
        prompt, negative = region_fields(texts, layer_id)
        self.region_prompt.setText(prompt)
        self.region_negative.setText(negative)


def _doc_key(doc: Any) -> str:
    """Which image ``doc`` is (Krita's Python wrappers are new objects at every call): its
    root node's id, which Save As keeps (a file name would change under the list's feet)."""
    return canvas.node_id(doc.rootNode())


def _active_node(doc: Any) -> Any:
    return doc.activeNode() if doc is not None else None
