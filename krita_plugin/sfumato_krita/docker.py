"""The Sfumato docker: widgets only. They edit ``Settings``, call the ``Controller`` and
render the ``Session``; all state and decisions live in ``model``/``jobs``/``controller``."""

from __future__ import annotations

from typing import Any

from krita import DockWidget, Krita
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sfumato.protocol import Array, ControlKind

from . import canvas
from .bridge import Bridge
from .controller import Controller
from .jobs import Mode
from .model import ControlLayer, JobState, Link, LoraChoice, Session, Settings

MODES = {
    Mode.GENERATE: "Generate", Mode.INPAINT: "Inpaint", Mode.BACKGROUND: "Background",
    Mode.REFINE: "Refine", Mode.EXPAND: "Expand", Mode.UPSCALE: "Upscale",
}  # fmt: skip
KINDS = {
    ControlKind.DEPTH: "Depth", ControlKind.NORMAL: "Normal", ControlKind.CANNY: "Canny edges",
    ControlKind.LINEART: "Line art", ControlKind.SCRIBBLE: "Scribble", ControlKind.POSE: "Pose",
    ControlKind.SHUFFLE: "Shuffle (style)",
}  # fmt: skip
SEED_RANDOM = -1
PREVIEW_WIDTH = 256


class ControlRow(QWidget):
    """One control layer: which layer, which kind, how strong, and whether to detect."""

    def __init__(self, control: ControlLayer, choices: list[tuple[str, str]], remove: Any) -> None:
        super().__init__()
        self.control = control
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.layer = QComboBox()
        self.kind = QComboBox()
        for kind, label in KINDS.items():
            self.kind.addItem(label, kind.value)
        self.kind.setCurrentIndex(list(KINDS).index(control.kind))
        self.strength = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.1)
        self.strength.setValue(control.strength)
        self.detect = QCheckBox("detect")
        self.detect.setToolTip("on: the layer is a picture to detect from; off: a control map")
        self.detect.setChecked(control.preprocess)
        drop = QToolButton(text="✕")
        drop.clicked.connect(lambda: remove(self))
        for widget in (self.layer, self.kind, self.strength, self.detect, drop):
            row.addWidget(widget)
        row.setStretch(0, 1)
        self.set_layers(choices)
        self.layer.currentIndexChanged.connect(self._store)
        self.kind.currentIndexChanged.connect(self._store)
        self.strength.valueChanged.connect(self._store)
        self.detect.toggled.connect(self._store)

    def set_layers(self, choices: list[tuple[str, str]]) -> None:
        self.layer.blockSignals(True)
        self.layer.clear()
        for layer_id, name in choices:
            self.layer.addItem(name, layer_id)
        index = self.layer.findData(self.control.layer_id)
        self.layer.setCurrentIndex(max(0, index))
        self.layer.blockSignals(False)
        self._store()

    def _store(self) -> None:
        self.control.layer_id = self.layer.currentData() or ""
        self.control.kind = ControlKind(self.kind.currentData())
        self.control.strength = self.strength.value()
        self.control.preprocess = self.detect.isChecked()


class SfumatoDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Sfumato")
        self.session = Session(self._load_settings())
        self.bridge = Bridge(self._events, self)
        self.controller = Controller(self.session, self.bridge, self._is_open)
        self._rows: list[ControlRow] = []
        self._shown_models: tuple[object, ...] = ()
        self._shown_loras: tuple[LoraChoice, ...] = ()
        self._build()
        self.session.subscribe(self._render)
        self._render(self.session)
        self.destroyed.connect(self.bridge.close)
        if self.session.settings.url:
            self.connect_server()

    # ------------------------------------------------------------------ widgets

    def _build(self) -> None:
        s = self.session.settings
        root = QWidget()
        box = QVBoxLayout(root)
        form = QFormLayout()
        self.url = QLineEdit(s.url)
        self.token = QLineEdit(s.token, echoMode=QLineEdit.Password, placeholderText="(none)")
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_server)
        self.status = QLabel(wordWrap=True)
        form.addRow("Server", self.url)
        form.addRow("Token", self.token)
        form.addRow(self.connect_button, self.status)
        self.mode = QComboBox()
        for mode, label in MODES.items():
            self.mode.addItem(label, mode.value)
        self.mode.setCurrentIndex(list(MODES).index(s.mode))
        self.model = QComboBox()
        form.addRow("Mode", self.mode)
        form.addRow("Model", self.model)
        self.prompt = QPlainTextEdit(s.prompt, placeholderText="what to paint")
        self.prompt.setMaximumHeight(70)
        self.negative = QLineEdit(s.negative, placeholderText="what to avoid")
        form.addRow("Prompt", self.prompt)
        form.addRow("Negative", self.negative)
        self.strength = QSpinBox(minimum=0, maximum=100, suffix=" %", value=round(s.strength * 100))
        self.seed = QSpinBox(minimum=SEED_RANDOM, maximum=2**31 - 1, specialValueText="random")
        self.seed.setValue(SEED_RANDOM if s.seed is None else s.seed)
        self.variants = QSpinBox(minimum=1, maximum=16, value=s.variants)
        self.steps = QSpinBox(minimum=1, maximum=150, value=s.steps)
        for label, widget in (("Strength", self.strength), ("Seed", self.seed),
                              ("Variants", self.variants), ("Steps", self.steps)):  # fmt: skip
            form.addRow(label, widget)
        box.addLayout(form)
        box.addWidget(QLabel("LoRAs (tick to use; weight applies to the selected one)"))
        self.loras = QListWidget()
        self.loras.setMaximumHeight(80)
        self.lora_weight = QDoubleSpinBox(minimum=-4.0, maximum=4.0, singleStep=0.1, value=1.0)
        box.addWidget(self.loras)
        box.addWidget(self.lora_weight)
        self.controls = QVBoxLayout()
        add = QPushButton("Add control layer")
        add.clicked.connect(self.add_control)
        box.addLayout(self.controls)
        box.addWidget(add)
        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.controller.cancel)
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        box.addLayout(buttons)
        self.progress = QProgressBar(minimum=0, maximum=100, value=0)
        self.preview = QLabel(alignment=Qt.AlignCenter)
        self.message = QLabel(wordWrap=True, textInteractionFlags=Qt.TextSelectableByMouse)
        for widget in (self.progress, self.preview, self.message):
            box.addWidget(widget)
        box.addStretch(1)
        self.setWidget(root)
        self.model.currentIndexChanged.connect(self._choose_model)
        self.loras.itemChanged.connect(self._store_loras)
        self.loras.currentItemChanged.connect(self._show_lora_weight)
        self.lora_weight.valueChanged.connect(self._store_loras)

    # ------------------------------------------------------------------ actions

    def connect_server(self) -> None:
        self._store()
        self.session.connecting()
        self.bridge.connect_to(self.session.settings.url, self.session.settings.token)

    def generate(self) -> None:
        self._store()
        self.controller.generate(Krita.instance().activeDocument())

    def add_control(self) -> None:
        control = ControlLayer("")
        self.session.settings.controls.append(control)
        row = ControlRow(control, self._layer_choices(), self._remove_control)
        self._rows.append(row)
        self.controls.addWidget(row)

    def _remove_control(self, row: ControlRow) -> None:
        self.session.settings.controls.remove(row.control)
        self._rows.remove(row)
        row.deleteLater()

    def canvasChanged(self, canvas_: Any) -> None:
        """Krita calls this when the active view changes: offer the new image's layers."""
        choices = self._layer_choices()
        for row in self._rows:
            row.set_layers(choices)

    def _layer_choices(self) -> list[tuple[str, str]]:
        doc = Krita.instance().activeDocument()
        return canvas.layers(doc) if doc is not None else []

    # ------------------------------------------------------------------ state ↔ widgets

    def _store(self) -> None:
        s = self.session.settings
        s.url, s.token = self.url.text().strip(), self.token.text()
        s.mode = Mode(self.mode.currentData())
        s.model = self.model.currentData() or None
        s.prompt, s.negative = self.prompt.toPlainText(), self.negative.text()
        s.strength = self.strength.value() / 100
        s.seed = None if self.seed.value() == SEED_RANDOM else self.seed.value()
        s.variants, s.steps = self.variants.value(), self.steps.value()
        app = Krita.instance()
        for key in ("url", "token", "prompt", "negative"):
            app.writeSetting("sfumato", key, getattr(s, key))
        app.writeSetting("sfumato", "mode", s.mode.value)

    def _choose_model(self) -> None:
        self.session.choose_model(self.model.currentData() or None)

    def _store_loras(self) -> None:
        current = self.loras.currentItem()
        if current is not None:
            current.setData(Qt.UserRole, self.lora_weight.value())
        self.session.settings.loras = {
            item.text(): float(item.data(Qt.UserRole) or 1.0)
            for item in (self.loras.item(i) for i in range(self.loras.count()))
            if item.checkState() == Qt.Checked
        }

    def _show_lora_weight(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            self.lora_weight.blockSignals(True)
            self.lora_weight.setValue(float(item.data(Qt.UserRole) or 1.0))
            self.lora_weight.blockSignals(False)

    def _load_settings(self) -> Settings:
        app, s = Krita.instance(), Settings()
        s.url = app.readSetting("sfumato", "url", "") or s.url
        s.token = app.readSetting("sfumato", "token", "")
        s.prompt = app.readSetting("sfumato", "prompt", "")
        s.negative = app.readSetting("sfumato", "negative", "")
        mode = app.readSetting("sfumato", "mode", s.mode.value)
        s.mode = Mode(mode) if mode in {m.value for m in Mode} else s.mode
        return s

    def _render(self, session: Session) -> None:
        self.status.setText(session.status)
        self.connect_button.setText("Reconnect" if session.link is Link.CONNECTED else "Connect")
        if session.models != self._shown_models:
            self._shown_models = session.models
            self._fill_models(session)
        choices = tuple(session.lora_choices())
        if choices != self._shown_loras:
            self._shown_loras = choices
            self._fill_loras(session, choices)
        job = session.job()
        running = job is not None and not job.state.finished
        self.generate_button.setEnabled(session.link is Link.CONNECTED)
        self.cancel_button.setEnabled(running)
        if job is not None:
            self.progress.setValue(100 * job.step // job.total if job.total else 0)
            self.progress.setFormat(_progress_text(job.state, job.position))
            if job.preview is not None:
                self.preview.setPixmap(_pixmap(job.preview))
        self.message.setText(session.message)

    def _fill_models(self, session: Session) -> None:
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem(f"server default ({session.default_model or 'none'})", "")
        for name in session.base_models():
            self.model.addItem(name, name)
        self.model.setCurrentIndex(max(0, self.model.findData(session.settings.model or "")))
        self.model.blockSignals(False)

    def _fill_loras(self, session: Session, choices: tuple[LoraChoice, ...]) -> None:
        """The LoRAs that fit the chosen model (``Session.lora_choices``); unapproved ones
        greyed out, with the reason as their tooltip."""
        self.loras.blockSignals(True)
        self.loras.clear()
        for choice in choices:
            item = QListWidgetItem(choice.name)
            item.setToolTip(choice.note)
            if choice.usable:
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                used = choice.name in session.settings.loras
                item.setCheckState(Qt.Checked if used else Qt.Unchecked)
            else:
                item.setFlags(item.flags() & ~(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable))
            item.setData(Qt.UserRole, session.settings.loras.get(choice.name, 1.0))
            self.loras.addItem(item)
        self.loras.blockSignals(False)

    def _events(self, events: list[object]) -> None:
        self.controller.handle(events)

    def _is_open(self, doc: Any) -> bool:
        return any(d == doc for d in Krita.instance().documents())


def _progress_text(state: JobState, position: int) -> str:
    if state is JobState.WAITING:
        return f"queued ({position} ahead)"
    if state is JobState.RUNNING:
        return "%p %"
    return state.value


def _pixmap(image: Array) -> QPixmap:
    h, w, c = image.shape
    fmt = QImage.Format_RGB888 if c == 3 else QImage.Format_RGBA8888
    qimage = QImage(bytes(image.data), w, h, c * w, fmt).copy()
    pixmap = QPixmap.fromImage(qimage)
    return pixmap.scaledToWidth(min(PREVIEW_WIDTH, w * 4), Qt.SmoothTransformation)
