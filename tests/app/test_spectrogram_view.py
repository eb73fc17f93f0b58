"""Spectrogram lanes: new columns are the only ones coloured and copied, with ImageItem's colours."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QImage

from app import spectrum
from app.views.lane_image import ColumnImage, magma_lut
from app.views.spectrogram import LINEAR_ROW_STEP, SpectrogramStack
from engine import STEM_NAMES

LEVELS = (spectrum.DB_FLOOR, spectrum.DB_CEILING)


def rgb32_pixels(image: QImage) -> np.ndarray:
    """``(height, width)`` uint32 ``0xffRRGGBB`` of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    rows = np.frombuffer(image.constBits(), dtype=np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    return rows[:, : image.width()].copy()


def test_a_partial_update_colours_and_copies_only_the_new_columns(qtbot) -> None:
    stack = SpectrogramStack(STEM_NAMES)
    qtbot.addWidget(stack)
    grid = spectrum.grid_for(44100 * 3, 44100)
    stack.set_grid(grid)
    written = {name: lane.image.n_columns_written for name, lane in stack.lanes.items()}
    columns = np.random.default_rng(0).uniform(-110.0, 5.0, (grid.n_bins, 7)).astype(np.float32)

    stack.set_columns("vocals", 40, columns)
    image = stack.lanes["vocals"].image
    assert image.n_columns_written - written["vocals"] == 7
    assert all(lane.image.n_columns_written == written[name] for name, lane in stack.lanes.items()
               if name != "vocals")
    rows = spectrum.log_rows(grid)[0]
    assert image.pixel_shape == (len(rows), grid.n_frames)
    np.testing.assert_array_equal(image.pixels[:, 40:47], image.colour(columns[rows]))
    floor = image.colours[0]
    assert (image.pixels[:, :40] == floor).all() and (image.pixels[:, 47:] == floor).all()
    np.testing.assert_array_equal(rgb32_pixels(image.qimage), image.pixels)  # the QImage shows the array itself

    stack.set_columns("vocals", grid.n_frames - 2, columns)  # clipped at the song's end
    assert image.n_columns_written - written["vocals"] == 9

    stack.set_log_frequency(False)  # another row layout: one whole new image per lane
    assert image.pixel_shape == (len(range(0, grid.n_bins, LINEAR_ROW_STEP)), grid.n_frames)
    np.testing.assert_array_equal(image.pixels[:, 40:47], image.colour(columns[::LINEAR_ROW_STEP]))


def test_colours_are_the_ones_image_item_shows(qtbot) -> None:
    values = np.linspace(-120.0, 10.0, 40 * 300, dtype=np.float32).reshape(40, 300)
    item = pg.ImageItem(axisOrder="row-major")
    item.setLookupTable(magma_lut())
    item.setImage(values, autoLevels=False, levels=LEVELS)
    item.render()
    ours = ColumnImage(LEVELS)
    ours.allocate(*values.shape)
    ours.write_columns(0, values)
    np.testing.assert_array_equal(ours.pixels, rgb32_pixels(item.qimage))
