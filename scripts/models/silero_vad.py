#!/usr/bin/env python3
"""Exports Silero VAD (silero-vad's TorchScript model) as a streaming whole-chunk module.

The packaged `silero_vad.jit` is called once per 512-sample frame; through tch that costs
~2 ms a frame (4 minutes per hour of audio). Its network is a stateless front end (STFT +
conv encoder, fed 64 samples of the previous frame as context) followed by an LSTMCell
carrying state from frame to frame. This script wraps the packaged submodules unchanged so the
front end runs on all frames of a chunk in one batch and only the LSTMCell loops, carrying
(context, state) across calls: the same probabilities as the per-frame loop, much faster.

Usage: silero_vad.py --out models   (prints one line: a JSON list of manifest entries)
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from importlib import metadata, util
from pathlib import Path
from typing import Tuple

# This file is named like the package it exports: keep its own folder off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

NAME = "silero_vad"
OUT_FILE = "silero_vad.pt"
PACKAGE = "silero-vad"
LICENCE = "MIT"
FRAME = 512
CONTEXT = 64
INPUT_CONTRACT = (
    "forward(samples: f32[n*512] at 16 kHz mono in [-1, 1], context: f32[64], "
    "state: f32[2, 128]) -> (speech_prob: f32[n] one per 512-sample frame, context: f32[64], "
    "state: f32[2, 128]); start with zeros for context and state and feed each call's outputs "
    "to the next call; zero-pad the last chunk to a multiple of 512."
)


def stream_module_class():
    """The wrapper class; torch is imported only when there is work to do."""
    import torch

    class SileroVadStream(torch.nn.Module):
        """Silero's own submodules, run over a whole chunk of frames at once."""

        def __init__(self, packaged: torch.jit.ScriptModule):
            super().__init__()
            inner = packaged._model
            self.stft = inner.stft
            self.encoder = inner.encoder
            self.rnn = inner.decoder.rnn
            self.head = inner.decoder.decoder

        def forward(
            self, samples: torch.Tensor, context: torch.Tensor, state: torch.Tensor
        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            frames = samples.reshape(-1, 512)
            # Each frame sees the last 64 samples before it, as the packaged model's `_context` does.
            previous = torch.cat([context.reshape(1, 64), frames[:-1, -64:]], 0)
            features = self.encoder(self.stft(torch.cat([previous, frames], 1))).squeeze(-1)
            # The LSTMCell over the frames as one single-layer torch.lstm call: the same
            # weights and equations, without a per-frame loop.
            hidden, h, c = torch.lstm(
                features.unsqueeze(1),
                [state[0].reshape(1, 1, 128), state[1].reshape(1, 1, 128)],
                [self.rnn.weight_ih, self.rnn.weight_hh, self.rnn.bias_ih, self.rnn.bias_hh],
                True,
                1,
                0.0,
                False,
                False,
                False,
            )
            out = self.head(hidden.squeeze(1).unsqueeze(-1))
            probs = out.squeeze(1).mean(1)
            return probs, frames[-1, -64:].clone(), torch.stack([h.reshape(128), c.reshape(128)])

    return SileroVadStream


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_path() -> Path:
    spec = util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        raise SystemExit("silero_vad: the silero-vad package is not installed; run scripts/setup")
    return Path(spec.origin).resolve().parent / "data" / "silero_vad.jit"


def test_audio():
    """A few seconds of espeak-ng speech with silence around it (tones if espeak-ng is absent)."""
    import torch

    espeak = shutil.which("espeak-ng")
    if espeak:
        with tempfile.TemporaryDirectory() as tmp:
            wav_path = os.path.join(tmp, "speech.wav")
            text = "Silero checks this sentence frame by frame. Then there is a pause."
            subprocess.run([espeak, "-w", wav_path, text], check=True, capture_output=True)
            with wave.open(wav_path, "rb") as w:
                rate = w.getframerate()
                pcm = torch.frombuffer(bytearray(w.readframes(w.getnframes())), dtype=torch.int16)
            speech = pcm.float() / 32768.0
            # espeak-ng speaks at 22050 Hz: linear resampling is plenty for a consistency check.
            n = int(len(speech) * 16000 / rate)
            speech = torch.nn.functional.interpolate(
                speech.view(1, 1, -1), size=n, mode="linear", align_corners=False
            ).view(-1)
    else:
        t = torch.arange(16000 * 3) / 16000.0
        speech = 0.3 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 3 * t)
    silence = torch.zeros(16000)
    return torch.cat([silence, speech, silence, 0.01 * torch.randn(8000), speech])


def verify(packaged, exported) -> float:
    """Max difference between the packaged per-frame loop and the export run in 3 chunks."""
    import torch

    audio = test_audio()
    audio = torch.nn.functional.pad(audio, (0, (-len(audio)) % FRAME))
    with torch.no_grad():
        packaged.reset_states()
        reference = packaged.audio_forward(audio.unsqueeze(0), 16000).view(-1)
        context, state = torch.zeros(CONTEXT), torch.zeros(2, 128)
        parts = []
        n_frames = len(audio) // FRAME
        bounds = [0, n_frames // 3, 2 * n_frames // 3, n_frames]
        for a, b in zip(bounds, bounds[1:]):
            probs, context, state = exported(audio[a * FRAME : b * FRAME], context, state)
            parts.append(probs)
        ours = torch.cat(parts)
    if reference.shape != ours.shape:
        raise SystemExit(f"silero_vad: shape mismatch {reference.shape} vs {ours.shape}")
    if reference.max() < 0.5:
        raise SystemExit("silero_vad: the packaged model found no speech in the check audio")
    return float((reference - ours).abs().max())


def export(out_path: Path, source: Path) -> None:
    import torch

    torch.set_num_threads(1)
    packaged = torch.jit.load(str(source), map_location="cpu").eval()
    exported = torch.jit.script(stream_module_class()(packaged).eval())
    difference = verify(packaged, exported)
    if difference > 1e-4:
        raise SystemExit(f"silero_vad: export differs from the packaged model by {difference}")
    print(f"silero_vad: export matches the packaged model (max diff {difference:.2e})", file=sys.stderr)
    tmp = out_path.with_suffix(".tmp")
    exported.save(str(tmp))
    tmp.replace(out_path)


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
        record = {
            "source_sha256": source_sha,
            "script_sha256": script_sha,
            "sha256": sha256(out_path),
        }
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
