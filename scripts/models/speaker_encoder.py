#!/usr/bin/env python3
"""Exports Resemblyzer's GE2E speaker encoder as TorchScript: raw 16 kHz windows in, embeddings out.

Resemblyzer computes a 40-channel mel power spectrogram with librosa (25 ms Hann window, 10 ms
hop, slaney mel scale and norm, no log), after raising quiet audio to -30 dBFS, then runs a
3-layer LSTM(256) → Linear(256) → ReLU → L2 norm on it. librosa is not installed here, so the
mel filterbank is rebuilt below exactly as librosa.filters.mel builds it and baked into the
module with the STFT, so callers only slice waveform windows. The export is checked against
Resemblyzer's own VoiceEncoder.forward on a float64 reference mel of the same audio.

Usage: speaker_encoder.py --out models   (prints one line: a JSON list of manifest entries)
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import types
import wave
from importlib import metadata, util
from pathlib import Path

NAME = "speaker_encoder"
OUT_FILE = "speaker_encoder.pt"
PACKAGE = "Resemblyzer"
LICENCE = "Apache-2.0"
SAMPLE_RATE = 16000
N_FFT = 400  # mel_window_length 25 ms
HOP = 160  # mel_window_step 10 ms
N_MELS = 40  # mel_n_channels
TARGET_DBFS = -30.0  # audio_norm_target_dBFS, increase only
INPUT_CONTRACT = (
    "forward(windows: f32[batch, samples] at 16 kHz mono in [-1, 1], all windows the same "
    "length, 1.5-2 s works well; resemblyzer's partials are 1.6 s) -> f32[batch, 256] "
    "L2-normalised GE2E embeddings; each window is raised to -30 dBFS if quieter, as "
    "resemblyzer's preprocess_wav does per utterance. Runs in float32 or float16."
)


def slaney_mel_filterbank(torch):
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40, fmin=0, fmax=8000, htk=False,
    norm='slaney'), computed in float64 the way librosa does it."""
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0

    def hz_to_mel(hz):
        return hz / f_sp if hz < min_log_hz else min_log_mel + math.log(hz / min_log_hz) / logstep

    def mel_to_hz(mels):
        linear = f_sp * mels
        log = min_log_hz * torch.exp(logstep * (mels - min_log_mel))
        return torch.where(mels >= min_log_mel, log, linear)

    fft_freqs = torch.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2, dtype=torch.float64)
    mels = torch.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2, dtype=torch.float64)
    mel_f = mel_to_hz(mels)
    fdiff = mel_f[1:] - mel_f[:-1]
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    enorm = 2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS])
    return weights * enorm[:, None]  # [40, 201]


def encoder_class():
    """The exported module; torch is imported only when there is work to do."""
    import torch

    class SpeakerEncoder(torch.nn.Module):
        """Waveform windows → mel power spectrogram → GE2E LSTM → L2-normalised embedding."""

        def __init__(self, state: dict):
            super().__init__()
            self.lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = torch.nn.Linear(256, 256)
            model_state = {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}
            self.load_state_dict(model_state, strict=True)
            self.register_buffer("window", torch.hann_window(N_FFT, periodic=True, dtype=torch.float64).float())
            self.register_buffer("mel_basis", slaney_mel_filterbank(torch).float())
            self.target_rms = 10.0 ** (TARGET_DBFS / 20.0)

        def forward(self, windows: torch.Tensor) -> torch.Tensor:
            # The front end runs in float32 whatever the weights' dtype: power spectra overflow fp16.
            wav = windows.float()
            rms = wav.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-8)
            wav = wav * (self.target_rms / rms).clamp_min(1.0)
            # n_fft 400 (25 ms), hop 160 (10 ms): literals, as TorchScript cannot read globals.
            spec = torch.stft(
                wav, 400, hop_length=160, win_length=400, window=self.window,
                center=True, pad_mode="constant", return_complex=True,
            )
            power = spec.real.pow(2) + spec.imag.pow(2)  # [batch, 201, frames]
            mel = torch.matmul(self.mel_basis, power).transpose(1, 2)  # [batch, frames, 40]
            _, (hidden, _) = self.lstm(mel.to(self.linear.weight.dtype))
            raw = torch.relu(self.linear(hidden[-1])).float()
            return raw / raw.norm(2, dim=1, keepdim=True).clamp_min(1e-12)

    return SpeakerEncoder


def reference_mel(torch, wav):
    """librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40) in
    float64 with explicit framing (centre zero padding, periodic Hann, rfft, |X|², mel)."""
    x = torch.nn.functional.pad(wav.double().view(1, 1, -1), (N_FFT // 2, N_FFT // 2)).view(-1)
    frames = x.unfold(0, N_FFT, HOP)  # [frames, 400]
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
    power = torch.fft.rfft(frames * window, dim=1).abs().pow(2)  # [frames, 201]
    return power @ slaney_mel_filterbank(torch).T  # [frames, 40]


def resemblyzer_voice_encoder(source: Path):
    """Resemblyzer's own VoiceEncoder. Its package __init__ imports resemblyzer.audio, which needs
    librosa and webrtcvad (not installed; only its preprocessing uses them), so that one module
    is replaced by an empty one before VoiceEncoder is imported."""
    sys.modules.setdefault("resemblyzer.audio", types.ModuleType("resemblyzer.audio"))
    for name in ("preprocess_wav", "wav_to_mel_spectrogram", "trim_long_silences", "normalize_volume"):
        setattr(sys.modules["resemblyzer.audio"], name, None)
    from resemblyzer.voice_encoder import VoiceEncoder

    return VoiceEncoder(device="cpu", verbose=False, weights_fpath=source).eval()


def speech_windows(torch, count: int, seconds: float):
    """Windows of espeak-ng speech from two voices (tones if espeak-ng is absent)."""
    length = int(seconds * SAMPLE_RATE)
    espeak = shutil.which("espeak-ng")
    clips = []
    if espeak:
        with tempfile.TemporaryDirectory() as tmp:
            for i, voice in enumerate(["en-us+m3", "en-gb+f2"]):
                path = os.path.join(tmp, f"{i}.wav")
                text = "The quick brown fox jumps over the lazy dog near the riverbank today."
                subprocess.run([espeak, "-v", voice, "-w", path, text], check=True, capture_output=True)
                with wave.open(path, "rb") as w:
                    rate = w.getframerate()
                    pcm = torch.frombuffer(bytearray(w.readframes(w.getnframes())), dtype=torch.int16)
                speech = pcm.float() / 32768.0
                n = int(len(speech) * SAMPLE_RATE / rate)
                clips.append(torch.nn.functional.interpolate(speech.view(1, 1, -1), size=n, mode="linear").view(-1))
    else:
        t = torch.arange(SAMPLE_RATE * 4) / SAMPLE_RATE
        clips = [0.2 * torch.sin(2 * torch.pi * f * t * (1 + 0.1 * torch.sin(t))) for f in (140, 230)]
    audio = torch.cat(clips)
    step = max(1, (len(audio) - length) // count)
    return torch.stack([audio[i * step : i * step + length] for i in range(count)])


def verify(torch, exported, source: Path) -> float:
    """Lowest cosine between the export on waveforms and VoiceEncoder.forward on reference mels."""
    encoder = resemblyzer_voice_encoder(source)
    windows = speech_windows(torch, 6, 1.6)
    with torch.no_grad():
        rms = windows.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-8)
        normalised = windows * (10.0 ** (TARGET_DBFS / 20.0) / rms).clamp_min(1.0)
        mels = torch.stack([reference_mel(torch, w) for w in normalised]).float()
        expected = encoder(mels)
        ours = exported(windows)
    return float(torch.nn.functional.cosine_similarity(expected, ours, dim=1).min())


def export(out_path: Path, source: Path) -> None:
    import torch

    torch.set_num_threads(1)
    checkpoint = torch.load(str(source), map_location="cpu", weights_only=True)
    exported = torch.jit.script(encoder_class()(checkpoint["model_state"]).eval())
    cosine = verify(torch, exported, source)
    if cosine < 0.999:
        raise SystemExit(f"speaker_encoder: export disagrees with resemblyzer (cosine {cosine:.5f})")
    print(f"speaker_encoder: export matches resemblyzer (min cosine {cosine:.6f})", file=sys.stderr)
    tmp = out_path.with_suffix(".tmp")
    exported.save(str(tmp))
    tmp.replace(out_path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_path() -> Path:
    spec = util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise SystemExit("speaker_encoder: the Resemblyzer package is not installed; run scripts/setup")
    return Path(spec.origin).resolve().parent / "pretrained.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    source = source_path()
    out_path = args.out / OUT_FILE
    record_path = args.out / (OUT_FILE + ".source.json")
    script_sha = sha256(Path(__file__))
    source_sha = sha256(source)
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    fresh = (
        out_path.exists()
        and record.get("source_sha256") == source_sha
        and record.get("script_sha256") == script_sha
        and record.get("sha256") == sha256(out_path)
    )
    if not fresh:
        export(out_path, source)
        record = {"source_sha256": source_sha, "script_sha256": script_sha, "sha256": sha256(out_path)}
        record_path.write_text(json.dumps(record, indent=2) + "\n")
    entry = {
        "name": NAME,
        "file": OUT_FILE,
        "source_package": PACKAGE,
        "source_version": metadata.version(PACKAGE),
        "licence": LICENCE,
        "sha256": record["sha256"],
        "input_contract": INPUT_CONTRACT,
    }
    print(json.dumps([entry]))


if __name__ == "__main__":
    main()
