"""Evaluation of separated stems against references.

- :mod:`~engine.evaluate.bss_eval`: BSS Eval v4 (SDR, ISR, SIR, SAR per 1 s window, museval convention).
- :mod:`~engine.evaluate.metrics`: whole-track uSDR (MDX convention) and SI-SDR; the metric labels.
- :mod:`~engine.evaluate.scores`: :class:`TrackScores` and :func:`evaluate_track` (arrays in, scores out).
- :mod:`~engine.evaluate.folders`: :func:`evaluate_folders` (MUSDB18-HQ layout, one-track folders, app exports).
- :mod:`~engine.evaluate.report`: JSON, markdown tables and box plots.
"""

from __future__ import annotations

from engine.evaluate.bss_eval import BSS_METRICS, BSSEvalFrames, bss_eval_v4
from engine.evaluate.folders import evaluate_folders, find_tracks
from engine.evaluate.metrics import METRICS, metric_label, si_sdr, usdr
from engine.evaluate.report import boxplot_png, markdown_table, summary, write_json, write_reports
from engine.evaluate.scores import TrackScores, evaluate_track

__all__ = [
    "BSS_METRICS",
    "BSSEvalFrames",
    "METRICS",
    "TrackScores",
    "boxplot_png",
    "bss_eval_v4",
    "evaluate_folders",
    "evaluate_track",
    "find_tracks",
    "markdown_table",
    "metric_label",
    "si_sdr",
    "summary",
    "usdr",
    "write_json",
    "write_reports",
]
