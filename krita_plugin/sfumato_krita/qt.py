"""The one module of the plugin that imports Qt's bindings (issue 10, item 4).

Krita 5 embeds PyQt5; Krita 6 moves to Qt6 (PyQt6 or PySide6), whose enums and a few names
differ. Every other module takes its Qt names from here, so moving to another binding is a
change to this file alone (``tests/krita/test_qt.py`` holds the rest of the plugin to that).
"""

from PyQt5.QtCore import QByteArray, QObject, Qt, QTimer
from PyQt5.QtGui import QColor, QImage, QPainter, QPixmap
from PyQt5.QtWidgets import (
    QAction,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

BINDING = "PyQt5"

__all__ = [
    "BINDING",
    "QAction",
    "QApplication",
    "QByteArray",
    "QCheckBox",
    "QColor",
    "QComboBox",
    "QDoubleSpinBox",
    "QFileDialog",
    "QFormLayout",
    "QFrame",
    "QHBoxLayout",
    "QImage",
    "QLabel",
    "QLineEdit",
    "QListWidget",
    "QListWidgetItem",
    "QMessageBox",
    "QObject",
    "QPainter",
    "QPixmap",
    "QPlainTextEdit",
    "QProgressBar",
    "QPushButton",
    "QScrollArea",
    "QSpinBox",
    "QTimer",
    "QToolButton",
    "QVBoxLayout",
    "QWidget",
    "Qt",
]  # fmt: skip
