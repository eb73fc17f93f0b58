"""A spectrogram lane's picture: a QImage the dB columns are coloured into one range at a time.

As Friture's spectrogram writes each new column once into its pixmap, :meth:`ColumnImage.write_columns` colours
and copies only the frames that changed (a separation region, a worker's batch); a repaint draws the image scaled
into its rectangle (seconds by Hz). The colours are pyqtgraph's bundled *magma* map, with the level mapping of
``pg.ImageItem`` (``levels`` spread over the 256 entries).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QStyleOptionGraphicsItem, QWidget

COLORMAP = "magma"


def magma_lut() -> np.ndarray:
    """``(256, 3)`` uint8 RGB: pyqtgraph's bundled magma colour map, black through purple and orange to pale yellow."""
    lut = pg.colormap.get(COLORMAP).getLookupTable(nPts=256, alpha=False)
    return np.ascontiguousarray(lut, dtype=np.uint8)


def rgb32(lut: np.ndarray) -> np.ndarray:
    """``(n, 3)`` uint8 RGB -> ``(n,)`` uint32 ``0xffRRGGBB`` pixels (QImage's RGB32)."""
    lut = lut.astype(np.uint32)
    return (np.uint32(0xFF000000) | (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]).astype(np.uint32)


class ColumnImage(pg.GraphicsObject):
    """An image of ``(n_rows, n_columns)`` pixels, row 0 at the bottom of its rectangle (low frequencies).

    Args:
        levels: the values mapped to the first and past the last colour (dB floor and ceiling).
        lut: ``(256, 3)`` uint8 colours (default: :func:`magma_lut`).
    """

    def __init__(self, levels: tuple[float, float], lut: np.ndarray | None = None) -> None:
        super().__init__()
        self.levels = (float(levels[0]), float(levels[1]))
        self.colours = rgb32(magma_lut() if lut is None else lut)
        self.pixels = np.zeros((0, 0), dtype=np.uint32)  #: ``(n_rows, n_columns)`` what the QImage shows
        self.qimage: QImage | None = None
        self.image_rect = QRectF()
        self.n_columns_written = 0  #: columns coloured and copied since creation (whole-image writes count all)

    @property
    def pixel_shape(self) -> tuple[int, int]:
        """``(n_rows, n_columns)`` (not ``shape``: that is QGraphicsItem's outline, which Qt calls)."""
        return self.pixels.shape  # type: ignore[return-value]

    def allocate(self, n_rows: int, n_columns: int) -> None:
        """A new image of the floor colour (a new song, or another row layout)."""
        self.prepareGeometryChange()
        self.pixels = np.full((n_rows, n_columns), self.colours[0], dtype=np.uint32)
        self.qimage = pg.functions.ndarray_to_qimage(self.pixels, QImage.Format.Format_RGB32) if self.pixels.size \
            else None  # shares the array's memory: writing pixels changes the image
        self.update()

    def colour(self, values: np.ndarray) -> np.ndarray:
        """``(n_rows, n)`` values -> ``(n_rows, n)`` uint32 pixels, as ``ImageItem`` maps its levels to a LUT."""
        low, high = self.levels
        scale = len(self.colours) / ((high - low) or 1.0)
        index = np.clip((values - low) * scale, 0, len(self.colours) - 1).astype(np.intp)
        return self.colours[index]

    def write_columns(self, first: int, values: np.ndarray) -> None:
        """Colour ``values`` ``(n_rows, n)`` into columns ``[first, first + n)`` and repaint only those."""
        n_columns = self.pixels.shape[1]
        stop = min(n_columns, first + values.shape[1])
        if first >= stop or values.shape[0] != self.pixels.shape[0]:
            return
        self.pixels[:, first:stop] = self.colour(values[:, : stop - first])
        self.n_columns_written += stop - first
        width = self.image_rect.width() / n_columns
        self.update(QRectF(self.image_rect.left() + first * width, self.image_rect.top(), (stop - first) * width,
                           self.image_rect.height()))

    def fill(self, value: float) -> None:
        """Every pixel the colour of ``value`` (a blank lane)."""
        self.pixels[...] = self.colour(np.array([[value]], dtype=np.float32))[0, 0]
        self.n_columns_written += self.pixels.shape[1]
        self.update()

    def set_rect(self, rect: QRectF) -> None:
        """Where the image lies in the plot's coordinates (x seconds, y Hz or log10 Hz)."""
        self.prepareGeometryChange()
        self.image_rect = QRectF(rect)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(self.image_rect)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self.qimage is None or self.image_rect.isEmpty():
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(self.image_rect, self.qimage)
