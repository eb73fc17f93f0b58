"""Separation models: one file per architecture, the spectrogram-mask pipeline and the model catalogue."""
