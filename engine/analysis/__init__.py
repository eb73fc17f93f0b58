"""Song analysis: tempo (BPM) and key, detected with librosa in the background and cached (no Qt)."""

from engine.analysis.tempo_key import (
    ANALYSIS_VERSION,
    SongAnalysis,
    analyse,
    analyse_cached,
    analysis_cache_dir,
    detect_key,
    transpose_key,
)

__all__ = ["ANALYSIS_VERSION", "SongAnalysis", "analyse", "analyse_cached", "analysis_cache_dir", "detect_key",
           "transpose_key"]
