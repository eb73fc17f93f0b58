"""The dark look: a Fusion palette, a small style sheet and one colour per stem."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

STEM_COLORS: dict[str, str] = {
    "mixture": "#d8d8d8",
    "vocals": "#ff6b9a",
    "drums": "#ffb347",
    "bass": "#5ad1ff",
    "other": "#a98bff",
    "master": "#e0e0e0",
}
#: Colours of stems :data:`STEM_COLORS` does not name (a spatial model's left/centre/right, "accompaniment"), in
#: the order they appear in a model's stems: distinct from the four named stems and from each other.
EXTRA_STEM_COLORS: tuple[str, ...] = ("#7ee081", "#ffe066", "#4fd1c5", "#ff8a65", "#c0ca33", "#90a4ff",
                                      "#f48fb1", "#bcaaa4")


def stem_colors(stems: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``{stem: colour}`` for a model's ``stems``: the named stems keep theirs, the others take
    :data:`EXTRA_STEM_COLORS` in turn (cycling past the eighth)."""
    others = [name for name in stems if name not in STEM_COLORS]
    return {name: STEM_COLORS.get(name) or EXTRA_STEM_COLORS[others.index(name) % len(EXTRA_STEM_COLORS)]
            for name in stems}

#: The Window colour of radio buttons and check boxes: Fusion draws their outline 1.4-1.5x darker (about #8a8e96).
INDICATOR_OUTLINE = "#c8ccd4"
INDICATOR_OUTLINE_DISABLED = "#7a7d84"

STYLE_SHEET = """
QToolBar { spacing: 4px; border: none; padding: 2px; }
QToolButton { padding: 3px 8px; border-radius: 3px; }
QToolButton:checked { background: #3a6ea5; }
QDockWidget::title { padding: 4px; background: #24262c; }
QPushButton#mute:checked { background: #d9534f; color: white; }
QPushButton#solo:checked { background: #e6b800; color: black; }
QPushButton#mute, QPushButton#solo { min-width: 24px; max-width: 30px; padding: 2px; font-weight: bold; }
QStatusBar QLabel { padding: 0 6px; }
QSlider::groove:vertical { width: 6px; background: #111; border-radius: 3px; }
QSlider::handle:vertical { height: 22px; margin: 0 -9px; background: #c8c8c8; border-radius: 3px; }
QSlider::sub-page:vertical { background: #111; }
QSlider::add-page:vertical { background: #2f6f9f; border-radius: 3px; }
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a dark palette."""
    app.setStyle("Fusion")
    palette = QPalette()
    role = QPalette.ColorRole
    for r, color in {
        role.Window: "#1e1f24", role.WindowText: "#e6e6e6", role.Base: "#15161a", role.AlternateBase: "#25262c",
        role.ToolTipBase: "#2b2d33", role.ToolTipText: "#e6e6e6", role.Text: "#e6e6e6", role.Button: "#2b2d33",
        role.ButtonText: "#e6e6e6", role.BrightText: "#ff5555", role.Highlight: "#3a6ea5",
        role.HighlightedText: "#ffffff", role.Link: "#5ad1ff", role.PlaceholderText: "#8a8a8a",
    }.items():
        palette.setColor(r, QColor(color))
    palette.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor("#6a6a6a"))
    palette.setColor(QPalette.ColorGroup.Disabled, role.ButtonText, QColor("#6a6a6a"))
    palette.setColor(QPalette.ColorGroup.Disabled, role.WindowText, QColor("#6a6a6a"))
    app.setPalette(palette)
    # Fusion outlines radio buttons and check boxes in the Window colour made darker: on a dark window an
    # unselected one all but vanished. Their own palette gets a light Window (used for nothing else), so the ring
    # and the box are drawn in a mid grey that stands out from the dialog.
    indicators = QPalette(palette)
    indicators.setColor(role.Window, QColor(INDICATOR_OUTLINE))
    indicators.setColor(QPalette.ColorGroup.Disabled, role.Window, QColor(INDICATOR_OUTLINE_DISABLED))
    for widget_class in ("QRadioButton", "QCheckBox"):
        app.setPalette(indicators, widget_class)
    app.setStyleSheet(STYLE_SHEET)
