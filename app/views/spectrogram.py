"""Spectrogram lanes (pyqtgraph): the mixture and each stem, stacked, sharing one time axis.

Each lane keeps its dB columns ``(n_bins, n_frames)`` and shows them through a
:class:`~app.views.lane_image.ColumnImage` (explicit levels, pyqtgraph's 256-entry magma map, a rectangle in
seconds and Hz) into which only the columns that changed are coloured. Regions not separated yet are hatched and
fill in as the separation worker proceeds; the region the worker is on has a brighter, moving hatch. When another
model re-separates the song, the previous model's columns stay drawn (not hatched) until the new model's columns
replace them, region by region (:meth:`SpectrogramStack.keep_stems`). The stem lanes follow the model
(:meth:`SpectrogramStack.set_stems`: a spatial model's left/centre/right, a two-stem model's vocals and
accompaniment). Left click seeks, left drag sets a loop region, the wheel zooms in time, right or middle drag
scrolls.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsSimpleTextItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from app import spectrum
from app.spectrum import format_time
from app.theme import STEM_COLORS, stem_colors
from app.views.lane_image import ColumnImage

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

LINEAR_ROW_STEP = 2  # linear view shows every other bin (1025 -> 513 rows)


class TimeAxis(pg.AxisItem):
    """Seconds shown as ``m:ss``."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [format_time(v) for v in values]


class FrequencyAxis(pg.AxisItem):
    """Hz labels; in log mode the axis values are ``log10(Hz)``."""

    LOG_TICKS = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.log_frequency = True

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802, N803
        if not self.log_frequency:
            return super().tickValues(minVal, maxVal, size)
        ticks = [math.log10(f) for f in self.LOG_TICKS if minVal <= math.log10(f) <= maxVal]
        return [(1.0, ticks)]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        out = []
        for v in values:
            hz = 10.0 ** v if self.log_frequency else v
            out.append(f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:.0f}")
        return out


class LaneViewBox(pg.ViewBox):
    """A ViewBox where left click seeks, left drag draws a loop, right/middle drag scrolls in time."""

    seek_requested = Signal(float)
    loop_dragged = Signal(float, float, bool)  # start, stop (seconds), finished

    def __init__(self) -> None:
        super().__init__(enableMenu=False)
        self.setMouseEnabled(x=True, y=False)

    def mouseClickEvent(self, ev: object) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.seek_requested.emit(float(self.mapSceneToView(ev.scenePos()).x()))
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev: object, axis: int | None = None) -> None:  # noqa: N802
        ev.accept()
        if ev.button() == Qt.MouseButton.LeftButton:
            start = float(self.mapSceneToView(ev.buttonDownScenePos()).x())
            here = float(self.mapSceneToView(ev.scenePos()).x())
            self.loop_dragged.emit(min(start, here), max(start, here), bool(ev.isFinish()))
            return
        before = self.mapSceneToView(ev.lastScenePos()).x()
        after = self.mapSceneToView(ev.scenePos()).x()
        self.translateBy(x=before - after)


class MovingHatch(QGraphicsPathItem):
    """A hatched path whose stripes move sideways by :attr:`phase` device pixels (the region being separated).

    Qt's hatch patterns are drawn in device pixels whatever the view's scale; the brush origin, given in item
    coordinates, is mapped back from the device position ``(phase, 0)`` so the stripes shift by whole pixels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.phase = 0

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        inverse, invertible = painter.worldTransform().inverted()
        if invertible:
            painter.setBrushOrigin(inverse.map(QPointF(float(self.phase), 0.0)))
        super().paint(painter, option, widget)


def _spans_path(spans: list[tuple[float, float]], bottom: float, top: float) -> QPainterPath:
    path = QPainterPath()
    for start, stop in spans:
        path.addRect(QRectF(start, bottom, stop - start, top - bottom))
    return path


class SpectrogramLane:
    """One lane: a plot with its image, playhead, loop region and not-separated hatching."""

    def __init__(self, name: str, title: str, bottom_axis: bool, color: str | None = None) -> None:
        self.name = name
        self.view = LaneViewBox()
        self.freq_axis = FrequencyAxis("left")
        axes = {"left": self.freq_axis, "bottom": TimeAxis("bottom")}
        self.plot = pg.PlotItem(viewBox=self.view, axisItems=axes)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        color = color or STEM_COLORS.get(name, "#cccccc")
        self.color = color
        self.plot.setLabel("left", f"<b>{title}</b>", color=color)
        self.freq_axis.setWidth(62)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.getAxis("bottom").setStyle(showValues=bottom_axis)
        if not bottom_axis:
            self.plot.getAxis("bottom").setHeight(2)
        self.image = ColumnImage((spectrum.DB_FLOOR, spectrum.DB_CEILING))
        self.plot.addItem(self.image)
        self.hatch = QGraphicsPathItem()
        self.hatch.setBrush(QBrush(QColor(170, 170, 200, 150), Qt.BrushStyle.BDiagPattern))
        self.hatch.setPen(QPen(Qt.PenStyle.NoPen))
        self.hatch.setZValue(5)
        self.plot.addItem(self.hatch)
        self.working = MovingHatch()  # the region the separation worker is on: brighter, moving stripes
        self.working.setBrush(QBrush(QColor(255, 214, 150, 200), Qt.BrushStyle.BDiagPattern))
        self.working.setPen(QPen(Qt.PenStyle.NoPen))
        self.working.setZValue(5.5)
        self.working.hide()
        self._working_shape: tuple[tuple[float, float], float, float] | None = None
        self.plot.addItem(self.working)
        # A plain Qt text item: pyqtgraph's TextItem in several plots crashed PySide 6.12 at interpreter exit.
        self.hatch_text = QGraphicsSimpleTextItem("")
        self.hatch_text.setBrush(QBrush(QColor("#e0e0f0")))
        self.hatch_text.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.hatch_text.setZValue(6)
        self.plot.addItem(self.hatch_text)
        self.loop = pg.LinearRegionItem(brush=QColor(80, 200, 255, 45), pen=pg.mkPen("#4fc3f7", width=1))
        self.loop.setZValue(8)
        self.loop.hide()
        self.plot.addItem(self.loop)
        self.playhead = pg.InfiniteLine(0.0, angle=90, movable=False, pen=pg.mkPen("#ffffff", width=2))
        self.playhead.setZValue(10)
        self.plot.addItem(self.playhead)
        self.data: np.ndarray | None = None

    def set_hatch(self, spans: list[tuple[float, float]], bottom: float, top: float, text: str) -> None:
        """Hatch each ``[start, stop)`` span in seconds (hidden when none) with ``text`` at the first one."""
        spans = [(a, b) for a, b in spans if b > a]
        if not spans:
            self.hatch.hide()
            self.hatch_text.hide()
            return
        self.hatch.setPath(_spans_path(spans, bottom, top))
        self.hatch.show()
        self.hatch_text.setText(f"  {text}" if text else "")
        self.hatch_text.setPos(spans[0][0], top)
        self.hatch_text.setVisible(bool(text))

    def set_working(self, span: tuple[float, float] | None, bottom: float, top: float, phase: int) -> None:
        """Show the moving hatch over ``span`` (seconds; None hides it), its stripes shifted by ``phase`` px."""
        if span is None or span[1] <= span[0]:
            self.working.hide()
            return
        shape = (span, bottom, top)
        if shape != self._working_shape:  # a new region (or axis): a new path; else only the stripes move
            self._working_shape = shape
            self.working.setPath(_spans_path([span], bottom, top))
        if self.working.phase != phase:
            self.working.phase = phase
            self.working.update()
        self.working.show()


class SpectrogramStack(pg.GraphicsLayoutWidget):
    """The mixture lane above one lane per stem, x-linked; the window's central view."""

    seek_requested = Signal(float)
    loop_changed = Signal(float, float)  #: start, stop seconds (stop <= start clears it)

    def __init__(self, stems: list[str] | tuple[str, ...], parent: object = None) -> None:
        super().__init__(parent=parent)
        self.setBackground("#15161a")
        self.ci.layout.setSpacing(2)
        self.ci.setContentsMargins(2, 4, 8, 2)
        self.stems: list[str] = []
        self.lanes: dict[str, SpectrogramLane] = {}
        self._add_lane(SpectrogramLane("mixture", "Mixture", bottom_axis=not stems), 0)
        self.grid: spectrum.SpectrogramGrid | None = None
        self.log_frequency = True
        hint = self.lanes["mixture"]
        hint.view.setRange(xRange=(0.0, 1.0), yRange=(0.0, 1.0), padding=0.0)
        hint.hatch_text.setText("Drop a song here\nor use File › Open (Ctrl+O)")  # two lines: fits a narrow lane
        hint.hatch_text.setPos(0.02, 0.6)
        self._unseparated: list[tuple[float, float]] | None = None
        self._hatch_text = ""
        self._working: tuple[float, float] | None = None
        self.fresh = np.zeros(0, dtype=bool)  #: stem frames drawn from the current separation
        self.kept = np.zeros(0, dtype=bool)  #: stem frames still showing a previous model's columns
        self._syncing = False
        self._row_key: tuple[spectrum.SpectrogramGrid, bool] | None = None
        self._row_index = np.zeros(0, dtype=np.intp)
        self.set_stems(stems)

    def _add_lane(self, lane: SpectrogramLane, row: int) -> None:
        self.addItem(lane.plot, row=row, col=0)
        if row:
            lane.plot.setXLink(self.lanes["mixture"].plot)
        lane.view.seek_requested.connect(self._on_seek)
        lane.view.loop_dragged.connect(self._on_loop_drag)
        lane.loop.sigRegionChangeFinished.connect(self._on_region_moved)
        self.lanes[lane.name] = lane

    def set_stems(self, stems: list[str] | tuple[str, ...]) -> None:
        """One lane per name of ``stems`` under the mixture lane (another model's stems): the old stem lanes go,
        the new ones start blank (hatched as not separated) on the open song's grid, with its loop and playhead."""
        stems = list(stems)
        if stems == self.stems:
            return
        for name in self.stems:
            lane = self.lanes.pop(name)
            lane.plot.setXLink(None)
            self.removeItem(lane.plot)
        self.stems = stems
        colors = stem_colors(stems)
        mixture = self.lanes["mixture"]
        mixture.plot.getAxis("bottom").setStyle(showValues=not stems)
        mixture.plot.getAxis("bottom").setHeight(None if not stems else 2)
        loop = self.loop_region()
        for row, name in enumerate(stems, start=1):
            lane = SpectrogramLane(name, name.capitalize(), bottom_axis=row == len(stems), color=colors[name])
            self._add_lane(lane, row)
            lane.playhead.setValue(mixture.playhead.value())
            if self.grid is not None:
                lane.data = np.full((self.grid.n_bins, self.grid.n_frames), spectrum.DB_FLOOR, dtype=np.float32)
        self.fresh[:] = False
        self.kept[:] = False
        if self.grid is not None:
            self._apply_axes()
        self.set_loop(*(loop or (None, None)))

    # -- data ------------------------------------------------------------------------------------------------------
    def set_grid(self, grid: spectrum.SpectrogramGrid) -> None:
        """Start a new song: every lane blank, stems hatched."""
        self.grid = grid
        for lane in self.lanes.values():
            lane.data = np.full((grid.n_bins, grid.n_frames), spectrum.DB_FLOOR, dtype=np.float32)
            lane.loop.hide()
        self.fresh = np.zeros(grid.n_frames, dtype=bool)
        self.kept = np.zeros(grid.n_frames, dtype=bool)
        self._working = None
        self._unseparated: list[tuple[float, float]] | None = None
        self._apply_axes()
        self.zoom_to_fit()

    def set_columns(self, name: str, first: int, columns: np.ndarray) -> None:
        """Write dB columns ``(n_bins, n)`` of lane ``name`` starting at frame ``first``; only they are redrawn."""
        lane = self.lanes.get(name)
        if lane is None or lane.data is None or columns.shape[1] == 0:
            return
        stop = min(lane.data.shape[1], first + columns.shape[1])
        if stop <= first:
            return
        lane.data[:, first:stop] = columns[:, : stop - first]
        self._upload(lane, first, stop)
        if name in self.stems:
            self.fresh[first:stop] = True
            self.kept[first:stop] = False

    def clear_stems(self) -> None:
        """Blank the stem lanes (before a new separation)."""
        for name in self.stems:
            lane = self.lanes[name]
            if lane.data is not None:
                lane.data.fill(spectrum.DB_FLOOR)
                lane.image.fill(spectrum.DB_FLOOR)
        self.fresh[:] = False
        self.kept[:] = False
        self.set_separated_until(0.0)

    def keep_stems(self) -> bool:
        """A new separation of the same song (another model or device): keep every stem column drawn so far, shown
        and not hatched, until :meth:`set_columns` replaces it. Returns whether anything was kept."""
        self.kept |= self.fresh
        self.fresh[:] = False
        return bool(self.kept.any())

    def undrawn_spans(self) -> list[tuple[float, float]]:
        """``[(start, stop), ...]`` seconds of the stem lanes with no columns at all (neither the current
        separation's nor kept ones): what :meth:`set_unseparated` should hatch."""
        if self.grid is None:
            return []
        seconds = self.grid.hop_length / self.grid.samplerate
        duration = self.grid.duration_seconds
        # frame f is centred on f * hop: it covers [f - 1/2, f + 1/2) hops (the first and last clipped to the song)
        return [(0.0 if a == 0 else max(0.0, (a - 0.5) * seconds),
                 duration if b == self.grid.n_frames else min(duration, (b - 0.5) * seconds))
                for a, b in spectrum.runs(~(self.fresh | self.kept))]

    def set_working(self, span: tuple[float, float] | None, phase: int = 0) -> None:
        """Mark ``span`` (seconds) as the region being separated now (None: no such region)."""
        self._working = span
        if self.grid is None:
            return
        bottom, top = self._y_range()
        for name in self.stems:
            self.lanes[name].set_working(span, bottom, top, phase)

    def set_separated_until(self, seconds: float, text: str | None = None) -> None:
        """Hatch the stem lanes from ``seconds`` to the end (the part not separated yet)."""
        end = self.grid.duration_seconds if self.grid is not None else seconds
        self.set_unseparated([(seconds, end)], text)

    def set_unseparated(self, spans: list[tuple[float, float]] | None, text: str | None = None) -> None:
        """Hatch the stem lanes over ``spans`` (seconds) not separated yet; None: the whole song."""
        self._unseparated = spans
        if text is not None:
            self._hatch_text = text
        if self.grid is None:
            return
        bottom, top = self._y_range()
        spans = [(0.0, self.grid.duration_seconds)] if spans is None else spans
        for name in self.stems:
            self.lanes[name].set_hatch(spans, bottom, top, self._hatch_text)

    def _y_range(self) -> tuple[float, float]:
        assert self.grid is not None
        if self.log_frequency:
            _, bottom, top = spectrum.log_rows(self.grid)
            return bottom, top
        return 0.0, self.grid.samplerate / 2.0

    def _rows(self) -> np.ndarray:
        """The bins shown, bottom row first: log-spaced rows, or every :data:`LINEAR_ROW_STEP`-th bin."""
        assert self.grid is not None
        key = (self.grid, self.log_frequency)
        if self._row_key != key:
            self._row_key = key
            self._row_index = (spectrum.log_rows(self.grid)[0] if self.log_frequency
                               else np.arange(0, self.grid.n_bins, LINEAR_ROW_STEP))
        return self._row_index

    def _upload(self, lane: SpectrogramLane, first: int, stop: int) -> None:
        """Colour frames ``[first, stop)`` of the lane's dB columns into its image."""
        if lane.data is not None and self.grid is not None:
            lane.image.write_columns(first, lane.data[self._rows(), first:stop])

    def _redraw(self, lane: SpectrogramLane) -> None:
        """A new image for the lane (new song or row layout): every column, and its rectangle."""
        if lane.data is None or self.grid is None:
            return
        lane.image.allocate(len(self._rows()), lane.data.shape[1])
        self._upload(lane, 0, lane.data.shape[1])
        bottom, top = self._y_range()
        lane.image.set_rect(QRectF(0.0, bottom, self.grid.duration_seconds, top - bottom))

    def _apply_axes(self) -> None:
        if self.grid is None:
            return
        bottom, top = self._y_range()
        for lane in self.lanes.values():
            lane.freq_axis.log_frequency = self.log_frequency
            lane.view.setLimits(xMin=0.0, xMax=self.grid.duration_seconds, yMin=bottom, yMax=top,
                                minXRange=0.05)
            lane.view.setYRange(bottom, top, padding=0.0)
            self._redraw(lane)
            lane.freq_axis.picture = None
            lane.freq_axis.update()
        self.set_unseparated(self._unseparated)
        self.set_working(self._working)

    def set_log_frequency(self, on: bool) -> None:
        self.log_frequency = bool(on)
        self._apply_axes()

    # -- view ------------------------------------------------------------------------------------------------------
    def zoom_to_fit(self) -> None:
        if self.grid is not None:
            self.lanes["mixture"].view.setXRange(0.0, self.grid.duration_seconds, padding=0.0)

    def zoom(self, factor: float) -> None:
        """Zoom in time around the centre of the view (factor < 1 zooms in)."""
        view = self.lanes["mixture"].view
        (x0, x1), _ = view.viewRange()
        centre, half = (x0 + x1) / 2.0, (x1 - x0) / 2.0 * factor
        view.setXRange(centre - half, centre + half, padding=0.0)

    def visible_range(self) -> tuple[float, float]:
        (x0, x1), _ = self.lanes["mixture"].view.viewRange()
        return float(x0), float(x1)

    def set_playhead(self, seconds: float, follow: bool = False) -> None:
        for lane in self.lanes.values():
            lane.playhead.setValue(seconds)
        if follow:
            x0, x1 = self.visible_range()
            if not x0 <= seconds <= x1:
                width = x1 - x0
                self.lanes["mixture"].view.setXRange(seconds - 0.1 * width, seconds + 0.9 * width, padding=0.0)

    def playhead_seconds(self) -> float:
        return float(self.lanes["mixture"].playhead.value())

    # -- loop ------------------------------------------------------------------------------------------------------
    def set_loop(self, start: float | None, stop: float | None) -> None:
        """Show (or with None, hide) the loop region on every lane, without emitting :attr:`loop_changed`."""
        self._syncing = True
        try:
            for lane in self.lanes.values():
                if start is None or stop is None or stop <= start:
                    lane.loop.hide()
                else:
                    lane.loop.setRegion((start, stop))
                    lane.loop.show()
        finally:
            self._syncing = False

    def loop_region(self) -> tuple[float, float] | None:
        lane = self.lanes["mixture"]
        if not lane.loop.isVisible():
            return None
        start, stop = lane.loop.getRegion()
        return float(start), float(stop)

    def _on_seek(self, seconds: float) -> None:
        if self.grid is not None:
            self.seek_requested.emit(min(max(0.0, seconds), self.grid.duration_seconds))

    def _on_loop_drag(self, start: float, stop: float, finished: bool) -> None:
        if self.grid is None:
            return
        start = max(0.0, start)
        stop = min(self.grid.duration_seconds, stop)
        self.set_loop(start, stop)
        if finished:
            self.loop_changed.emit(start, stop)

    def _on_region_moved(self, region: pg.LinearRegionItem) -> None:
        if self._syncing:
            return
        start, stop = region.getRegion()
        self.set_loop(start, stop)
        self.loop_changed.emit(float(start), float(stop))
