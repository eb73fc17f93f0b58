"""Oracle masks (ideal ratio / ideal binary): the upper bounds the papers compare against.

They need the true stems, so they are for evaluation only. Input is the mixture with the reference stems stacked
after it on the channel axis, so the ordinary chunked engine runs them with bounded memory; the model's
``prepare_input`` hook (``needs_references = True``) builds it, see :func:`engine.models.base.prepare_input`.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from engine.dsp.stft import istft, stft
from engine.errors import ShotokuError
from engine.models.base import set_audio_format
from engine.models.catalogue import register_architecture


@register_architecture("oracle_mask")
class OracleMaskModel(nn.Module):
    """Masks the mixture's STFT with a mask computed from the reference stems.

    ``mask="irm"``: ``|S_j|^alpha / sum_k |S_k|^alpha`` (alpha=2: the power ratio mask, 'IRM2' in sigsep's oracle
    toolbox); ``mask="ibm"``: 1 where stem ``j`` is the loudest stem in the bin, else 0.
    """

    needs_references = True

    def __init__(
        self,
        mask: str = "irm",
        alpha: float = 2.0,
        sources: list[str] | None = None,
        samplerate: int = 44100,
        n_channels: int = 2,
        n_fft: int = 4096,
        hop_length: int = 1024,
        segment_seconds: float = 30.0,
    ) -> None:
        super().__init__()
        if mask not in ("irm", "ibm"):
            raise ValueError("mask must be 'irm' or 'ibm'")
        self.mask, self.alpha = mask, alpha
        set_audio_format(self, sources, samplerate, n_channels, segment_seconds)
        self.n_fft, self.hop_length = n_fft, hop_length

    def forward(self, mix_and_references: Tensor) -> Tensor:
        """``(n_batch, n_channels * (1 + n_stems), n_samples)`` -> ``(n_batch, n_stems, n_channels, n_samples)``.

        Channels ``[0, n_channels)`` are the mixture, then each reference stem in ``self.sources`` order.
        """
        n_batch, _, n_samples = mix_and_references.shape
        n_stems, n_channels = len(self.sources), self.n_channels
        stacked = mix_and_references.reshape(n_batch, 1 + n_stems, n_channels, n_samples)
        spec = stft(stacked, self.n_fft, self.hop_length)  # (n_batch, 1+n_stems, n_channels, n_bins, n_frames)
        mix_spec, ref_mag = spec[:, 0], spec[:, 1:].abs()
        if self.mask == "irm":
            power = ref_mag.pow(self.alpha)
            masks = power / power.sum(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            masks = (ref_mag == ref_mag.max(dim=1, keepdim=True).values).to(ref_mag.dtype)
            masks = masks / masks.sum(dim=1, keepdim=True)  # ties share the bin
        return istft(masks * mix_spec.unsqueeze(1), n_samples, self.n_fft, self.hop_length)

    def prepare_input(self, mix: np.ndarray, references: dict[str, np.ndarray] | None) -> np.ndarray:
        """The :func:`engine.models.base.prepare_input` hook: :func:`oracle_input` in ``self.sources`` order."""
        return oracle_input(mix, self.sources, references)


def oracle_input(mix: np.ndarray, sources: list[str], references: dict[str, np.ndarray] | None) -> np.ndarray:
    """The input an oracle model takes: ``mix`` ``(n_channels, n_samples)``, then each reference stem's channels.

    References (already at the mixture's rate) are fitted to the mixture's length (cut or zero-padded) and channel
    count (the first channel repeated); stems are stacked in ``sources`` order.

    Returns:
        float32 ``(n_channels * (1 + n_stems), n_samples)``.
    Raises:
        ShotokuError: a reference stem is missing or not ``(n_channels, n_samples)``.
    """
    missing = [name for name in sources if references is None or name not in references]
    if missing:
        raise ShotokuError(f"an oracle model needs the reference stems; missing: {', '.join(missing)}")
    n_channels, n_samples = mix.shape
    stacked = [np.asarray(mix, dtype=np.float32)]
    for name in sources:
        ref = np.asarray(references[name], dtype=np.float32)  # type: ignore[index]
        if ref.ndim != 2:
            raise ShotokuError(f"reference {name!r} must be (n_channels, n_samples), got shape {ref.shape}")
        if ref.shape[0] != n_channels:
            ref = np.repeat(ref[:1], n_channels, axis=0)
        fitted = np.zeros((n_channels, n_samples), dtype=np.float32)
        n = min(n_samples, ref.shape[1])
        fitted[:, :n] = ref[:, :n]
        stacked.append(fitted)
    return np.ascontiguousarray(np.concatenate(stacked, axis=0))
