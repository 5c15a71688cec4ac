"""The Sfumato docker: widgets only. They edit ``Settings``, call the ``Controller`` and
render the ``Session``; all state and decisions live in ``model``/``jobs``/``controller``.
Each window has its docker; all of them are views of the one :class:`~.plugin.Plugin` of
the Krita instance (one connection, one session)."""

from __future__ import annotations

from typing import Any

from krita import DockWidget, Krita

from sfumato.protocol import Array, ControlKind

from . import canvas
from .directionbox import DirectionBox
from .jobs import SEED_MAX, USES_STRENGTH, Mode, check_seed
from .livebox import LiveBox
from .model import ControlLayer, JobState, Link, LoraChoice, Record, Session, Settings
from .plugin import Plugin, save_settings
from .qt import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QImage,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPixmap,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from .serverbox import ServerBox

MODES = {
    Mode.GENERATE: "Generate", Mode.INPAINT: "Inpaint", Mode.BACKGROUND: "Background",
    Mode.REFINE: "Refine", Mode.EXPAND: "Expand", Mode.UPSCALE: "Upscale",
}  # fmt: skip
KINDS = {
    ControlKind.DEPTH: "Depth", ControlKind.NORMAL: "Normal", ControlKind.CANNY: "Canny edges",
    ControlKind.LINEART: "Line art", ControlKind.SCRIBBLE: "Scribble", ControlKind.POSE: "Pose",
    ControlKind.SHUFFLE: "Shuffle (style)",
}  # fmt: skip
PREVIEW_WIDTH = 256
PREVIEW_HEIGHT = 128
PROMPT_HEIGHT = 64
SCROLL_MIN_HEIGHT = 120
MESSAGE_CHARS = 240  # longer messages are cut here; Details… shows all of it


class SeedBox(QDoubleSpinBox):
    """The seed: "random" or any of the protocol's 0 … 2**32 − 1. A QSpinBox holds a signed
    32-bit int (half the seeds); a double holds every integer below 2**53 exactly."""

    RANDOM = -1.0

    def __init__(self) -> None:
        super().__init__(decimals=0, minimum=self.RANDOM, maximum=float(SEED_MAX))
        self.setSpecialValueText("random")
        self.setValue(self.RANDOM)

    def seed(self) -> int | None:
        value = round(self.value())
        return None if value < 0 else value

    def set_seed(self, seed: int | None) -> None:
        self.setValue(self.RANDOM if seed is None else float(check_seed(seed)))


class WrapLabel(QLabel):
    """A word-wrapped label that is never shorter than its wrapped text (issue 18 item 4).

    Krita's dock area lays dockers out by their minimum size and ignores height-for-width,
    so a plain wrapped QLabel is squeezed below its text when the column is full and loses
    its last lines. This one makes its wrapped height its minimum: the docker's minimum
    grows with the text and the dock area gives it the room (taking it from the settings
    scroll, which is there for that)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(wordWrap=True, **kwargs)

    def setText(self, text: str) -> None:
        super().setText(text)
        self._fit()

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        needed = self.heightForWidth(self.width()) if self.text() else 0
        if needed != self.minimumHeight():
            self.setMinimumHeight(max(0, needed))


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
    def __init__(self, plugin: Plugin) -> None:
        super().__init__()
        self.setWindowTitle("Sfumato")
        self.plugin = plugin
        self.session = plugin.session
        self.controller = plugin.controller
        self._rows: list[ControlRow] = []
        self._shown_models: tuple[object, ...] = ()
        self._shown_loras: tuple[LoraChoice, ...] = ()
        self._shown_preview: Array | None = None
        self._build()
        self._shown_limits: tuple[int, int] = (0, 0)
        unsubscribe = self.session.subscribe(self._render)
        self.destroyed.connect(lambda *_: unsubscribe())  # a closed window's docker
        self._render(self.session)
        plugin.start()

    # ------------------------------------------------------------------ widgets

    def _build(self) -> None:
        """Two parts: the settings scroll (a small docker scrolls instead of pushing Krita's
        window past the screen), and a footer that never scrolls away — Generate, Cancel,
        progress, preview, the connection status and the last message."""
        s = self.session.settings
        root = QWidget()
        box = QVBoxLayout(root)
        box.setContentsMargins(2, 2, 2, 2)
        scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumHeight(SCROLL_MIN_HEIGHT)
        scroll.setWidget(self._settings_widget(s))
        self.scroll = scroll
        box.addWidget(scroll, 1)
        box.addWidget(self._footer())
        self.setWidget(root)
        self.model.currentIndexChanged.connect(self._choose_model)
        self.mode.currentIndexChanged.connect(self._show_mode)
        self._show_mode()
        self.loras.itemChanged.connect(self._store_loras)
        self.loras.currentItemChanged.connect(self._show_lora_weight)
        self.lora_weight.valueChanged.connect(self._store_loras)

    def _settings_widget(self, s: Settings) -> QWidget:
        page = QWidget()
        box = QVBoxLayout(page)
        box.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.url = QLineEdit(s.url)
        self.token = QLineEdit(s.token, echoMode=QLineEdit.Password, placeholderText="(none)")
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_server)
        form.addRow("Server", self.url)
        form.addRow("Token", self.token)
        form.addRow("", self.connect_button)
        self.server_box = ServerBox(self.plugin.server, self._store)  # Start a local server
        form.addRow(self.server_box)
        self.mode = QComboBox()
        for mode, label in MODES.items():
            self.mode.addItem(label, mode.value)
        self.mode.setCurrentIndex(list(MODES).index(s.mode))
        self.model = QComboBox()
        form.addRow("Mode", self.mode)
        form.addRow("Model", self.model)
        self.prompt = QPlainTextEdit(s.prompt, placeholderText="what to paint")
        self.prompt.setMinimumHeight(PROMPT_HEIGHT)
        self.prompt.setMaximumHeight(PROMPT_HEIGHT)
        self.negative = QLineEdit(s.negative, placeholderText="what to avoid")
        form.addRow("Prompt", self.prompt)
        form.addRow("Negative", self.negative)
        self.strength = QSpinBox(minimum=0, maximum=100, suffix=" %", value=round(s.strength * 100))
        self.strength.setToolTip(
            "how much to change: the image is noised this far and steps × strength steps run"
        )
        self.variants = QSpinBox(minimum=1, maximum=16, value=s.variants)
        self.strength_label = QLabel("Strength")
        form.addRow(self.strength_label, self.strength)
        form.addRow("Variants", self.variants)
        box.addLayout(form)
        self.advanced_toggle = QToolButton(text="Advanced", checkable=True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.RightArrow)
        self.advanced_toggle.setAutoRaise(True)
        self.advanced = self._advanced_widget(s)
        self.advanced.setVisible(False)  # folded: the everyday settings fit without scrolling
        self.advanced_toggle.toggled.connect(self._fold)
        box.addWidget(self.advanced_toggle)
        box.addWidget(self.advanced)
        box.addStretch(1)
        return page

    def _advanced_widget(self, s: Settings) -> QWidget:
        page = QWidget()
        box = QVBoxLayout(page)
        box.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.seed = SeedBox()
        self.seed.set_seed(s.seed)
        self.steps = QSpinBox(minimum=1, maximum=150, value=s.steps)
        form.addRow("Seed", self.seed)
        form.addRow("Steps", self.steps)
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
        self.direction = DirectionBox(s, self._layer_choices)  # references, regions (16.3)
        box.addWidget(self.direction)
        return page

    def _footer(self) -> QWidget:
        footer = QWidget()
        box = QVBoxLayout(footer)
        box.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.controller.cancel)
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        self.live_box = LiveBox(self.plugin.live, self._live_settings)  # Krita Live
        buttons.addWidget(self.live_box)
        box.addLayout(buttons)
        self.progress = QProgressBar(minimum=0, maximum=100, value=0)
        box.addWidget(self.live_box.status)  # in the progress bar's place while Live is on
        self.plugin.live.pull = self._live_settings
        unsubscribe = self.plugin.live.subscribe(self._show_mode)
        self.destroyed.connect(lambda *_: unsubscribe())
        self.preview = QLabel(alignment=Qt.AlignCenter)
        self.preview.setMinimumSize(1, 1)  # a preview never makes the docker taller
        self.preview.setMaximumHeight(PREVIEW_HEIGHT)
        self.preview.setVisible(False)
        self.status = WrapLabel()
        self.machine = WrapLabel()  # the server machine's facts (welcome.system)
        self.machine.setVisible(False)
        self.message = WrapLabel(textInteractionFlags=Qt.TextSelectableByMouse)
        self.details = QToolButton(text="Details…", autoRaise=True)
        self.details.setVisible(False)
        self.details.clicked.connect(self._show_details)
        for widget in (
            self.progress, self.preview, self.status, self.machine, self.message, self.details,
        ):  # fmt: skip
            box.addWidget(widget)
        return footer

    def _show_mode(self) -> None:
        """Strength only where it steers the result (``jobs.USES_STRENGTH``)."""
        live = self.plugin.live.on
        uses = Mode(self.mode.currentData()) in USES_STRENGTH or live
        self.progress.setVisible(not live)
        self.strength.setVisible(uses)
        self.strength_label.setVisible(uses)

    def _fold(self, unfolded: bool) -> None:
        self.advanced.setVisible(unfolded)
        self.advanced_toggle.setArrowType(Qt.DownArrow if unfolded else Qt.RightArrow)

    def _show_details(self) -> None:
        QMessageBox.information(self, "Sfumato", self.session.message)

    # ------------------------------------------------------------------ actions

    def connect_server(self) -> None:
        self._store()
        self.plugin.connect_server()

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
        self.direction.refresh()

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
        s.seed = self.seed.seed()
        s.variants, s.steps = self.variants.value(), self.steps.value()
        save_settings(s)

    def _live_settings(self) -> None:
        """What a live job uses, from the widgets as they are now (Live polls this; the
        settings are saved when Generate or Connect is pressed, as before)."""
        s = self.session.settings
        s.prompt, s.negative = self.prompt.toPlainText(), self.negative.text()
        s.strength, s.seed = self.strength.value() / 100, self.seed.seed()
        s.steps = self.steps.value()

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

    def _render(self, session: Session) -> None:
        self.status.setText(session.status)
        self.machine.setText(session.machine)
        self.machine.setVisible(bool(session.machine))
        self.connect_button.setText("Reconnect" if session.link is Link.CONNECTED else "Connect")
        if session.models != self._shown_models:
            self._shown_models = session.models
            self._fill_models(session)
        limits = (session.offer.limits.max_steps, session.offer.limits.max_variants)
        if session.welcome is not None and limits != self._shown_limits:
            self._shown_limits = limits  # the server's limits, not ours (issue 10 item 1)
            self.steps.setMaximum(limits[0])
            self.variants.setMaximum(max(1, limits[1]))
        choices = tuple(session.lora_choices())
        if choices != self._shown_loras:
            self._shown_loras = choices
            self._fill_loras(session, choices)
        job = session.job()
        running = job is not None and not job.state.finished
        self.generate_button.setEnabled(session.link is Link.CONNECTED and not session.busy)
        self.cancel_button.setEnabled(running)
        if job is not None:
            self.progress.setValue(100 * job.step // job.total if job.total else 0)
            self.progress.setFormat(_progress_text(job))
        else:  # nothing started (or refused): no old "done" under the refusal
            self.progress.setValue(0)
            self.progress.setFormat("")
        if job is None or job.preview is None:
            self.preview.clear()  # never the last job's picture under this one's progress
            self.preview.setVisible(False)
        elif job.preview is not self._shown_preview:
            self.preview.setPixmap(_pixmap(job.preview))
            self.preview.setVisible(True)
        self._shown_preview = None if job is None else job.preview
        text = session.message
        cut = len(text) > MESSAGE_CHARS
        self.message.setText(text[: MESSAGE_CHARS - 1] + "…" if cut else text)
        self.message.setToolTip(text if cut else "")
        self.message.setVisible(bool(text))
        self.details.setVisible(cut)

    def _fill_models(self, session: Session) -> None:
        self.model.blockSignals(True)
        self.model.clear()
        choices = session.model_choices()
        default = next((c for c in choices if c.name == session.default_model), None)
        label = default.label if default else (session.default_model or "none")
        self.model.addItem(f"server default ({label})", "")
        if default is not None and not default.usable:
            self.model.setItemData(0, default.note, Qt.ToolTipRole)
        for choice in choices:
            self.model.addItem(choice.label, choice.name)
            index = self.model.count() - 1
            self.model.setItemData(index, choice.note, Qt.ToolTipRole)
            if not choice.usable:  # listed, so the artist sees it exists, but not pickable
                self.model.model().item(index).setEnabled(False)
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


def _progress_text(job: Record) -> str:
    """The host session's status line, with Qt's percentage while denoising."""
    if job.state is JobState.RUNNING and job.stage != "loading":
        return "%p %"
    return job.status()


def _pixmap(image: Array) -> QPixmap:
    h, w, c = image.shape
    fmt = QImage.Format_RGB888 if c == 3 else QImage.Format_RGBA8888
    qimage = QImage(bytes(image.data), w, h, c * w, fmt).copy()
    pixmap = QPixmap.fromImage(qimage)
    width, height = min(PREVIEW_WIDTH, w * 4), min(PREVIEW_HEIGHT, h * 4)
    return pixmap.scaled(width, height, Qt.KeepAspectRatio, Qt.SmoothTransformation)
