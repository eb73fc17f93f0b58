"""The Help menu's dialogs: the keyboard reference (from :data:`app.keys.KEYS`, the table that registers the
shortcuts), About (version, licence, model, device, libraries) and the user guide shown in the app (a
QTextBrowser reading ``docs/USER_GUIDE.md`` as Markdown, so it works where no browser or file launcher exists).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from html import escape
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, QUrl, qVersion
from PySide6.QtGui import QGuiApplication, QResizeEvent, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.keys import GROUPS, KEYS, MOUSE, described_for
from engine import STEM_NAMES, __version__
from engine.models.catalogue import ModelCard

#: The project's licence, as pyproject.toml declares it (tests/app/test_help.py compares the two).
LICENCE_ID = "GPL-3.0-or-later"
LICENCE = "GNU General Public License, version 3 or (at your option) any later version"
HOMEPAGE_NOTE = "Open-source stem separation: split a song into vocals, drums, bass and other, and remix it live."


def guide_path() -> Path:
    """``docs/USER_GUIDE.md`` of the checkout, or of the PyInstaller bundle (packaging/shotoku.spec copies it)."""
    frozen = getattr(sys, "_MEIPASS", None)
    root = Path(frozen) if frozen else Path(__file__).resolve().parents[1]
    return root / "docs" / "USER_GUIDE.md"


#: The guide's size where the screen has room; its screenshots are shown as wide as its page, at most this wide.
GUIDE_SIZE = (900, 760)
GUIDE_IMAGE_WIDTH = 820


def fit_images(browser: QTextBrowser, width: int) -> int:
    """Show every image of ``browser``'s document at most ``width`` pixels wide (its height in proportion, never
    wider than the picture itself); returns how many images it sized."""
    document = browser.document()
    cursor = QTextCursor(document)
    sized = 0
    block = document.begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            image = fragment.charFormat().toImageFormat()
            if fragment.isValid() and image.isValid() and image.name():
                picture = document.resource(QTextDocument.ResourceType.ImageResource, QUrl(image.name()))
                natural = (picture.width(), picture.height()) if hasattr(picture, "width") else (0, 0)
                if natural[0] > 0:
                    shown = min(width, natural[0])
                    image.setWidth(shown)
                    image.setHeight(natural[1] * shown / natural[0])
                    cursor.setPosition(fragment.position())
                    cursor.setPosition(fragment.position() + fragment.length(), QTextCursor.MoveMode.KeepAnchor)
                    cursor.setCharFormat(image)
                    sized += 1
            iterator += 1
        block = block.next()
    return sized


def _close_buttons(dialog: QDialog) -> QDialogButtonBox:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    return buttons


class KeyboardDialog(QDialog):
    """Every shortcut of :data:`app.keys.KEYS`, grouped, then the mouse gestures. The stem keys name ``stems`` (the
    model in use's, in its order; default the four-stem models'), and keys past its stems are left out."""

    def __init__(self, parent: QWidget | None = None, stems: Sequence[str] = STEM_NAMES) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard reference")
        layout = QVBoxLayout(self)
        rows: list[tuple[str, str, str]] = []
        for group in GROUPS:
            for k in KEYS:
                what = described_for(k, stems) if k.group == group else None
                if what is not None:
                    rows.append((group, k.text(), what))
        rows += [("Mouse", gesture, what) for gesture, what in MOUSE]
        table = QTableWidget(len(rows), 3)
        table.setHorizontalHeaderLabels(["", "Key", "Action"])
        previous = ""
        for row, (group, keys, what) in enumerate(rows):
            for col, text in enumerate((group if group != previous else "", keys, what)):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setForeground(Qt.GlobalColor.gray)
                if col == 1:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                table.setItem(row, col, item)
            previous = group
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        table.setShowGrid(False)
        table.resizeColumnsToContents()
        table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        table.resizeRowsToContents()
        layout.addWidget(table)
        layout.addWidget(_close_buttons(self))
        self.table = table
        height = table.horizontalHeader().height() + sum(table.rowHeight(r) for r in range(len(rows))) + 70
        self.resize(max(560, table.horizontalHeader().length() + 40), min(760, height))

    def rows(self) -> list[tuple[str, str]]:
        """``(key, action)`` of every row (tests)."""
        return [(self.table.item(r, 1).text(), self.table.item(r, 2).text()) for r in range(self.table.rowCount())]


def about_html(model: ModelCard | None, device: str, audio: str) -> str:
    """About's text: version, licence, the model in use, the compute device, the audio output, the libraries."""
    import numpy
    import torch

    if model is not None:
        model_line = f"{escape(model.name)} ({escape(model.kind)}): {escape(model.summary)}"
    else:
        model_line = "none (no trained model installed: the original mix plays)"
    libraries = (f"Python {platform.python_version()}, Qt {qVersion()} (PySide6 {pyside_version}), "
                 f"PyTorch {torch.__version__}, NumPy {numpy.__version__}")
    return (
        f"<h2>Shotoku {escape(__version__)}</h2><p>{escape(HOMEPAGE_NOTE)}</p>"
        f"<p><b>Licence</b>: {escape(LICENCE)} ({LICENCE_ID}).</p>"
        f"<p><b>Model</b>: {model_line}<br><b>Separation device</b>: {escape(device or 'unavailable')}<br>"
        f"<b>Audio output</b>: {escape(audio or '—')}</p>"
        f"<p><small>{escape(libraries)}; {escape(platform.system())} {escape(platform.machine())}</small></p>"
    )


class AboutDialog(QDialog):
    """Version, licence, the model and device in use, the audio output and the library versions."""

    def __init__(self, model: ModelCard | None, device: str, audio: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Shotoku")
        layout = QVBoxLayout(self)
        self.label = QLabel(about_html(model, device, audio))
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setMinimumWidth(520)
        layout.addWidget(self.label)
        layout.addWidget(_close_buttons(self))

    def text(self) -> str:
        return self.label.text()


class GuideDialog(QDialog):
    """The user guide (Markdown, with its screenshots), or where it should have been when it is missing."""

    def __init__(self, path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        path = path or guide_path()
        self.setWindowTitle("Shotoku user guide")
        screen = (parent.screen() if parent is not None else None) or QGuiApplication.primaryScreen()
        free = screen.availableGeometry() if screen is not None else None
        self.resize(min(GUIDE_SIZE[0], int(free.width() * 0.9)) if free else GUIDE_SIZE[0],
                    min(GUIDE_SIZE[1], int(free.height() * 0.9)) if free else GUIDE_SIZE[1])
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            self.browser.setPlainText(f"The user guide is not installed ({path}: {err.strerror or err}).\n\n"
                                      "Help > Keyboard reference lists every shortcut.")
        else:
            self.browser.document().setBaseUrl(QUrl.fromLocalFile(str(path.parent) + "/"))
            self.browser.setSearchPaths([str(path.parent)])
            self.browser.setMarkdown(text)
        self._image_width = 0
        layout.addWidget(self.browser)
        layout.addWidget(_close_buttons(self))
        self._fit()

    def _fit(self) -> None:
        """Size the screenshots to the page (the browser's width, less its margins and scroll bar)."""
        width = max(120, min(GUIDE_IMAGE_WIDTH, self.browser.viewport().width()
                             - 2 * int(self.browser.document().documentMargin()) - 24))
        if width != self._image_width:
            self._image_width = width
            fit_images(self.browser, width)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def text(self) -> str:
        return self.browser.toPlainText()
