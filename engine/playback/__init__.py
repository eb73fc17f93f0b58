"""Real-time playback of live remixes (issue 5): no Qt here.

- :mod:`engine.playback.mixer`: the audio-callback kernel (preallocated, ramped gains, limiter); what it reads is a
  :class:`~engine.playback.mixsource.MixerSource` (stems, ready flags, the replaced model's stems as fallback).
- :mod:`engine.playback.mix`: the one mix state (strips, master, presets) and its gain rules.
- :mod:`engine.playback.deck`: the mixer with its stems, mix and transport.
- :mod:`engine.playback.stream`: the sounddevice output, device listing, rate negotiation, error states;
  :mod:`engine.playback.output`: that output or, without one, the silent clock (:mod:`engine.playback.silent`).
- :mod:`engine.playback.song`, :mod:`engine.playback.source`, :mod:`engine.playback.ratematch`: the open song as the
  mixer reads it (stems resampled region by region when the device rate differs).
- :mod:`engine.playback.background`: :class:`BackgroundSeparation`, the song's separation off the playback path.
- :mod:`engine.playback.session`: :class:`PlaybackSession`, the facade the GUI and ``shotoku play`` use.
- :mod:`engine.playback.tuning`: process-wide settings the app and ``shotoku play`` apply at start-up.

Closing is bounded whatever the load (``background.CLOSE_BOUND``, ``session.CLOSE_BOUND``). Import the submodules
directly; this package imports nothing heavy (no sounddevice, no torch) on its own.
"""
