"""Real-time playback of live remixes (issue 5): no Qt here.

- :mod:`engine.playback.mixer`: the audio-callback kernel (preallocated, ramped gains, limiter).
- :mod:`engine.playback.stream`: the sounddevice output, device listing, rate negotiation, error states.
- :mod:`engine.playback.ratematch`: stems resampled region by region when the device rate differs.
- :mod:`engine.playback.session`: :class:`PlaybackSession`, the facade the GUI and ``shotoku play`` use.

Import the submodules directly; this package imports nothing heavy (no sounddevice, no torch) on its own.
"""
