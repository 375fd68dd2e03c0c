#!/usr/bin/env python3
"""Exports the TorchScript helper that runs a dynamically quantized int8 linear layer from Rust.

tch binds no quantized op, so this module (no weights of its own) gives the worker two methods:
`pack(weight: f32[out, in]) -> LinearPackedParamsBase`, which quantizes the weight once to int8
per output row (symmetric: scale = the row's largest magnitude / 127, zero point 0) and packs it
for FBGEMM, and `linear(x: f32[..., in], packed) -> f32[..., out]`, which is
`quantized::linear_dynamic` (activations quantized per call, 7-bit as
`torch.ao.quantization.quantize_dynamic` does on x86). The worker uses it for Whisper's
vocabulary projection, half of a decoding step's time in f32. The export is checked against the
f32 product it replaces on a weight of tiny.en's projection shape.

Usage: int8_linear.py --out models   (prints one line: a JSON list of manifest entries)
"""
import argparse
import hashlib
import json
import warnings
from importlib import metadata
from pathlib import Path

import torch

# torch 2.13 marks eager quantized tensors deprecated (in favour of torchao); the FBGEMM ops this
# helper calls are the ones quantize_dynamic uses, present in the pinned torch.
warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")

NAME = "int8_linear"
OUT_FILE = "int8_linear.pt"
PACKAGE = "torch"
LICENCE = "BSD-3-Clause (PyTorch; the module holds no weights)"
INPUT_CONTRACT = (
    "pack(weight: f32[out, in]) -> packed (LinearPackedParamsBase: int8 per output row, "
    "symmetric); linear(x: f32[..., in] contiguous, packed) -> f32[..., out] = x @ weight.T "
    "through quantized::linear_dynamic (FBGEMM, CPU only)."
)


class DynamicInt8Linear(torch.nn.Module):
    @torch.jit.export
    def pack(self, weight: torch.Tensor) -> torch.classes.quantized.LinearPackedParamsBase:
        weight = weight.float().contiguous()
        scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
        zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
        q = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, None)

    @torch.jit.export
    def linear(self, x: torch.Tensor,
               packed: torch.classes.quantized.LinearPackedParamsBase) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, packed, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(out_path: Path) -> None:
    torch.backends.quantized.engine = "fbgemm"
    tmp = out_path.with_suffix(".tmp")
    torch.jit.script(DynamicInt8Linear()).save(str(tmp))
    check(torch.jit.load(str(tmp)))
    tmp.rename(out_path)


def check(helper) -> None:
    """The int8 product against f32 on tiny.en's projection shape (51864 x 384): no logit further
    off than 3 % of the largest, and the same top token wherever f32's top token leads its
    runner-up by more than twice the largest error (random logits are often near ties)."""
    import sys
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(51864, 384, generator=generator) * 0.05
    x = torch.randn(4, 64, 384, generator=generator)
    exact = x @ weight.T
    approx = helper.linear(x, helper.pack(weight))
    error = (exact - approx).abs().max().item()
    worst = error / exact.abs().max().item()
    top2 = exact.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 2 * error
    same_top = exact.argmax(-1) == approx.argmax(-1)
    if approx.shape != exact.shape or worst > 0.03 or not bool(same_top[clear].all()):
        raise SystemExit(f"int8_linear: export disagrees with f32 (worst error {worst:.2%} of the "
                         f"largest logit; top token differs in {int((~same_top[clear]).sum())} of "
                         f"{int(clear.sum())} clear rows)")
    print(f"int8_linear: export matches f32 (worst error {worst:.2%} of the largest logit; top "
          f"token the same in {int(same_top.sum())} of {same_top.numel()} rows, all "
          f"{int(clear.sum())} clear ones)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    out_path = args.out / OUT_FILE
    record_path = args.out / (OUT_FILE + ".source.json")
    script_sha = sha256(Path(__file__))
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    fresh = (
        out_path.exists()
        and record.get("torch_version") == torch.__version__
        and record.get("script_sha256") == script_sha
        and record.get("sha256") == sha256(out_path)
    )
    if not fresh:
        export(out_path)
        record = {
            "torch_version": torch.__version__,
            "script_sha256": script_sha,
            "sha256": sha256(out_path),
        }
        record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps([{
        "name": NAME,
        "file": OUT_FILE,
        "source_package": PACKAGE,
        "source_version": metadata.version(PACKAGE),
        "licence": LICENCE,
        "sha256": record["sha256"],
        "input_contract": INPUT_CONTRACT,
    }]))


if __name__ == "__main__":
    main()
