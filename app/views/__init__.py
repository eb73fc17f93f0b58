"""Widgets of the main window: spectrogram lanes, channel strips, the mixer console."""
