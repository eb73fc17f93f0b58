"""Reports of evaluation results: a JSON file, markdown tables and one box plot PNG per stem.

``results`` is always a mapping ``{method_name: [TrackScores, ...]}`` (one entry per evaluated folder of
estimates). Every table header and plot title names its metric and both aggregations, because "SDR" means three
different things in the literature (see :mod:`engine.evaluate.metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from engine import STEM_NAMES
from engine.evaluate.metrics import METRICS, USDR_EPS, metric_label
from engine.evaluate.scores import TrackScores, json_number, nan_median

Results = Mapping[str, Sequence[TrackScores]]

_DEFINITIONS = (
    "- **SDR, SIR, SAR, ISR**: BSS Eval v4 (image version, as museval/SiSEC 2018): distortion filters of 512 taps "
    "estimated once on the whole track, metrics per window; a track's value is the median over its windows "
    "(windows with a silent reference or estimate are skipped), the table shows the median over tracks.\n"
    f"- **uSDR**: whole-track SDR, 10 log10((Σs² + ε)/(Σ(s - ŝ)² + ε)) with ε = {USDR_EPS:g}, as the MDX/SDX "
    "challenges; the table shows the median over tracks (the challenges rank by the mean, stored in the JSON).\n"
    "- **SI-SDR**: scale-invariant SDR of the whole track, channels flattened into one vector, no mean removal; "
    "median over tracks.\n"
)


def stems_in(results: Results) -> list[str]:
    """Stems evaluated by any method: the standard stems first, in ``STEM_NAMES`` order, then any others."""
    seen: list[str] = []
    for tracks in results.values():
        for track in tracks:
            seen.extend(s for s in track.stems if s not in seen)
    return [s for s in STEM_NAMES if s in seen] + [s for s in seen if s not in STEM_NAMES]


def track_values(tracks: Sequence[TrackScores], stem: str, metric: str) -> np.ndarray:
    """Track-level values of ``metric`` for ``stem``, ``(n_tracks,)``, without the tracks that lack the stem."""
    values = np.array([t.value(stem, metric) for t in tracks], dtype=np.float64)
    return values[~np.isnan(values)]


def summary(results: Results, metric: str = "SDR", aggregate: str = "median") -> dict[str, dict[str, float]]:
    """``{method: {stem: value}}``: the median (or ``aggregate="mean"``) over tracks of the track values."""
    if aggregate not in ("median", "mean"):
        raise ValueError(f"aggregate must be 'median' or 'mean', not {aggregate!r}")
    out: dict[str, dict[str, float]] = {}
    for method, tracks in results.items():
        out[method] = {}
        for stem in stems_in(results):
            values = track_values(tracks, stem, metric)
            if not values.size:
                out[method][stem] = float("nan")
            elif aggregate == "median":
                out[method][stem] = nan_median(values)
            else:
                out[method][stem] = float(np.mean(values))
    return out


def _window_seconds(results: Results) -> float:
    for tracks in results.values():
        for track in tracks:
            return track.window_seconds
    return 1.0


def to_dict(results: Results) -> dict:
    """The whole evaluation as a JSON-ready dict: metric labels, per-method summaries and per-track scores."""
    window_seconds = _window_seconds(results)
    return {
        "metrics": {m: metric_label(m, window_seconds) for m in METRICS},
        "definitions": _DEFINITIONS,
        "methods": {
            method: {
                "median_over_tracks": {
                    m: {s: json_number(v) for s, v in summary({method: tracks}, m).get(method, {}).items()}
                    for m in METRICS
                },
                "mean_over_tracks": {
                    m: {
                        s: json_number(v)
                        for s, v in summary({method: tracks}, m, "mean").get(method, {}).items()
                    }
                    for m in METRICS
                },
                "tracks": [t.to_dict() for t in tracks],
            }
            for method, tracks in results.items()
        },
    }


def write_json(path: str | Path, results: Results) -> Path:
    """Write :func:`to_dict` to ``path`` (strict JSON: NaN as ``null``); returns the path."""
    path = Path(path)
    path.write_text(json.dumps(to_dict(results), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def readable(text: str) -> str:
    """``text`` as valid unicode: bytes of a name that is not UTF-8 (``os.fsdecode``'s surrogate escapes) become
    U+FFFD, so a report about such a folder can be written as UTF-8 and shown."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _cell(value: float, decimals: int) -> str:
    if np.isnan(value):
        return "–"
    if np.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{decimals}f}"


def markdown_table(
    results: Results, metric: str = "SDR", stems: Sequence[str] | None = None, decimals: int = 2
) -> str:
    """A markdown table: one row per method, one column per stem, cells the median over tracks in dB.

    The header's first cell names the metric and its aggregation, e.g.
    ``"SDR (BSS Eval v4, median of 1 s frames, median over tracks) [dB]"``.
    """
    stems = list(stems) if stems is not None else stems_in(results)
    medians = summary(results, metric)
    counts = {m: len(tracks) for m, tracks in results.items()}
    header = f"| {metric_label(metric, _window_seconds(results))} [dB] | " + " | ".join(stems) + " | tracks |"
    rule = "|---|" + "---:|" * len(stems) + "---:|"
    rows = [
        f"| {method} | "
        + " | ".join(_cell(medians[method].get(s, float("nan")), decimals) for s in stems)
        + f" | {counts[method]} |"
        for method in results
    ]
    return readable("\n".join([header, rule, *rows]) + "\n")


def markdown_report(results: Results, metrics: Sequence[str] = METRICS) -> str:
    """Tables for every metric, what each metric means, and the notes (truncations, skipped stems) per track."""
    parts = ["# Evaluation\n", _DEFINITIONS]
    for metric in metrics:
        parts.append(markdown_table(results, metric))
    notes = [
        f"- {method} / {track.name}: {note}"
        for method, tracks in results.items()
        for track in tracks
        for note in track.notes
    ]
    if notes:
        parts.append("## Notes\n\n" + "\n".join(notes) + "\n")
    return readable("\n".join(parts))


def boxplot_png(results: Results, stem: str, path: str | Path, metric: str = "SDR") -> Path:
    """Box plot of the track values of ``metric`` for ``stem``, methods side by side (as the SiSEC papers'
    figures), each track drawn as a point over its box. Uses matplotlib's Agg canvas (no pyplot, no GUI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    methods = list(results)
    data = [track_values(results[m], stem, metric) for m in methods]
    figure = Figure(figsize=(max(4.0, 1.4 * len(methods) + 2.0), 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    positions = np.arange(1, len(methods) + 1)
    finite = [d[np.isfinite(d)] for d in data]
    axes.boxplot(finite, positions=positions, widths=0.5, showfliers=False, medianprops={"color": "black"})
    rng = np.random.default_rng(0)
    for x, values in zip(positions, finite, strict=True):
        axes.scatter(x + rng.uniform(-0.12, 0.12, values.size), values, s=12, alpha=0.6, zorder=3)
    axes.set_xticks(positions, [readable(f"{m}\n(n={d.size})") for m, d in zip(methods, finite, strict=True)])
    axes.set_ylabel(f"{metric} [dB]")
    label = metric_label(metric, _window_seconds(results), tracks="one point per track")
    axes.set_title(readable(f"{stem}\n{label}"), fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def write_reports(results: Results, out_dir: str | Path, metric: str = "SDR") -> dict[str, Path]:
    """Write ``scores.json``, ``scores.md`` and ``boxplot_<stem>.png`` (of ``metric``) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(out_dir / "scores.json", results)}
    md = out_dir / "scores.md"
    md.write_text(markdown_report(results), encoding="utf-8")
    written["markdown"] = md
    for stem in stems_in(results):
        written[f"boxplot_{stem}"] = boxplot_png(results, stem, out_dir / f"boxplot_{stem}.png", metric)
    return written
