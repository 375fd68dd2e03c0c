//! The Whisper network of `whisper/model.py` on tch: `AudioEncoder` and `TextDecoder` of
//! `ResidualAttentionBlock`s, with the decoder's key/value cache (self-attention grows by one
//! position per token; cross-attention keys and values are computed once per window and kept
//! for the forced passes over the same audio).

use super::Config;
use crate::inference::InferenceError;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, TchError, Tensor};

/// The weights file read into memory, taken from by name.
struct Weights<'a> {
    tensors: HashMap<String, Tensor>,
    path: &'a Path,
    kind: Kind,
    device: Device,
}

impl Weights<'_> {
    fn take(&mut self, name: &str) -> Result<Tensor, InferenceError> {
        let tensor = self
            .tensors
            .remove(name)
            .ok_or_else(|| InferenceError::ModelInvalid {
                path: self.path.to_path_buf(),
                reason: format!(
                    "it has no tensor {name}; convert it again with scripts/prepare-models"
                ),
            })?;
        Ok(tensor.f_to_device(self.device)?.f_to_kind(self.kind)?)
    }

    fn linear(&mut self, name: &str, bias: bool) -> Result<Linear, InferenceError> {
        let weight = self.take(&format!("{name}.weight"))?;
        let bias = if bias {
            Some(self.take(&format!("{name}.bias"))?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    fn layer_norm(&mut self, name: &str) -> Result<LayerNorm, InferenceError> {
        Ok(LayerNorm {
            weight: self.take(&format!("{name}.weight"))?,
            bias: self.take(&format!("{name}.bias"))?,
        })
    }
}

/// `Linear` (and `Conv1d`'s weight and bias).
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_linear(&self.weight, self.bias.as_ref())
    }

    fn conv1d(&self, x: &Tensor, stride: i64) -> Result<Tensor, TchError> {
        x.f_conv1d(&self.weight, self.bias.as_ref(), [stride], [1], [1], 1)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let n_state = self.weight.size()[0];
        x.f_layer_norm([n_state], Some(&self.weight), Some(&self.bias), 1e-5, true)
    }
}

struct MultiHeadAttention {
    n_head: i64,
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
}

impl MultiHeadAttention {
    fn load(w: &mut Weights, name: &str, n_head: usize) -> Result<Self, InferenceError> {
        Ok(MultiHeadAttention {
            n_head: n_head as i64,
            query: w.linear(&format!("{name}.query"), true)?,
            key: w.linear(&format!("{name}.key"), false)?,
            value: w.linear(&format!("{name}.value"), true)?,
            out: w.linear(&format!("{name}.out"), true)?,
        })
    }

    /// `[batch, ctx, state]` → `[batch, head, ctx, state / head]`, contiguous.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let (batch, ctx, _) = x.size3()?;
        x.f_view([batch, ctx, self.n_head, -1])?
            .f_transpose(1, 2)?
            .f_contiguous()
    }

    /// `qkv_attention`: softmax(q kᵀ / √d) v over heads, on keys and values already split into
    /// heads (`[batch, head, ctx, state / head]`); `causal` masks future positions.
    fn qkv_attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        causal: bool,
    ) -> Result<Tensor, TchError> {
        let (batch, ctx, state) = q.size3()?;
        let q = self.split_heads(q)?;
        let wv = Tensor::f_scaled_dot_product_attention(
            &q,
            k,
            v,
            None::<Tensor>,
            0.0,
            causal,
            None::<f64>,
            false,
        )?;
        self.out
            .forward(&wv.f_transpose(1, 2)?.f_reshape([batch, ctx, state])?)
    }

    /// Self-attention; with a cache, the new keys and values are appended to it (kept split
    /// into heads, so a decoding step copies nothing but its own token's keys and values).
    fn forward_self(
        &self,
        x: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor, TchError> {
        let q = self.query.forward(x)?;
        let mut k = self.split_heads(&self.key.forward(x)?)?;
        let mut v = self.split_heads(&self.value.forward(x)?)?;
        // Several tokens at once only happen on an empty cache (the prompt), so the causal mask
        // `mask[:n_ctx, :n_ctx]` of the reference is sdpa's top-left aligned one.
        let causal = cache.is_some() && x.size()[1] > 1;
        if let Some(cache) = cache {
            if let Some((past_k, past_v)) = cache.as_ref() {
                k = Tensor::f_cat(&[past_k, &k], 2)?;
                v = Tensor::f_cat(&[past_v, &v], 2)?;
            }
            *cache = Some((k.shallow_clone(), v.shallow_clone()));
        }
        self.qkv_attention(&q, &k, &v, causal)
    }

    /// The audio's keys and values for cross-attention, split into heads once per window.
    fn cross_kv(&self, audio_features: &Tensor) -> Result<(Tensor, Tensor), TchError> {
        Ok((
            self.split_heads(&self.key.forward(audio_features)?)?,
            self.split_heads(&self.value.forward(audio_features)?)?,
        ))
    }

    fn forward_cross(
        &self,
        x: &Tensor,
        kv: &(Tensor, Tensor),
        qk_out: Option<&mut Option<Tensor>>,
    ) -> Result<Tensor, TchError> {
        let q = self.query.forward(x)?;
        let Some(qk_out) = qk_out else {
            return self.qkv_attention(&q, &kv.0, &kv.1, false);
        };
        // Written out (sdpa returns no weights): `qk = q kᵀ / √d`, kept for the alignment heads
        // as the reference's `qkv_attention` returns it, before the softmax.
        let (batch, ctx, state) = q.size3()?;
        let q = self.split_heads(&q)?;
        let scale = ((state / self.n_head) as f64).powf(-0.5);
        let qk = q
            .f_matmul(&kv.0.f_transpose(-1, -2)?)?
            .f_mul_scalar(scale)?
            .f_to_kind(Kind::Float)?;
        let weights = qk.f_softmax(-1, Kind::Float)?.f_to_kind(kv.1.kind())?;
        let wv = weights.f_matmul(&kv.1)?;
        *qk_out = Some(qk);
        self.out
            .forward(&wv.f_transpose(1, 2)?.f_reshape([batch, ctx, state])?)
    }
}

struct ResidualAttentionBlock {
    attn: MultiHeadAttention,
    attn_ln: LayerNorm,
    cross_attn: Option<(MultiHeadAttention, LayerNorm)>,
    mlp_0: Linear,
    mlp_2: Linear,
    mlp_ln: LayerNorm,
}

impl ResidualAttentionBlock {
    fn load(
        w: &mut Weights,
        name: &str,
        n_head: usize,
        cross: bool,
    ) -> Result<Self, InferenceError> {
        let cross_attn = if cross {
            Some((
                MultiHeadAttention::load(w, &format!("{name}.cross_attn"), n_head)?,
                w.layer_norm(&format!("{name}.cross_attn_ln"))?,
            ))
        } else {
            None
        };
        Ok(ResidualAttentionBlock {
            attn: MultiHeadAttention::load(w, &format!("{name}.attn"), n_head)?,
            attn_ln: w.layer_norm(&format!("{name}.attn_ln"))?,
            cross_attn,
            mlp_0: w.linear(&format!("{name}.mlp.0"), true)?,
            mlp_2: w.linear(&format!("{name}.mlp.2"), true)?,
            mlp_ln: w.layer_norm(&format!("{name}.mlp_ln"))?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        self_cache: Option<&mut Option<(Tensor, Tensor)>>,
        cross_kv: Option<&(Tensor, Tensor)>,
        cross_qk: Option<&mut Option<Tensor>>,
    ) -> Result<Tensor, TchError> {
        let mut x = x.f_add(
            &self
                .attn
                .forward_self(&self.attn_ln.forward(x)?, self_cache)?,
        )?;
        if let (Some((cross_attn, cross_attn_ln)), Some(kv)) = (&self.cross_attn, cross_kv) {
            x = x.f_add(&cross_attn.forward_cross(&cross_attn_ln.forward(&x)?, kv, cross_qk)?)?;
        }
        let hidden = self
            .mlp_0
            .forward(&self.mlp_ln.forward(&x)?)?
            .f_gelu("none")?;
        x.f_add(&self.mlp_2.forward(&hidden)?)
    }
}

pub struct AudioEncoder {
    conv1: Linear,
    conv2: Linear,
    positional_embedding: Tensor,
    blocks: Vec<ResidualAttentionBlock>,
    ln_post: LayerNorm,
}

impl AudioEncoder {
    /// `mel`: `[batch, n_mels, 3000]` → audio features `[batch, n_audio_ctx, n_audio_state]`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor, TchError> {
        let x = self.conv1.conv1d(mel, 1)?.f_gelu("none")?;
        let x = self
            .conv2
            .conv1d(&x, 2)?
            .f_gelu("none")?
            .f_permute([0, 2, 1])?;
        let mut x = x.f_add(&self.positional_embedding)?;
        for block in &self.blocks {
            x = block.forward(&x, None, None, None)?;
        }
        self.ln_post.forward(&x)
    }
}

pub struct TextDecoder {
    token_embedding: Tensor,
    positional_embedding: Tensor,
    blocks: Vec<ResidualAttentionBlock>,
    ln: LayerNorm,
    /// The vocabulary projection in int8, where it was asked for (see [`Int8Projection`]).
    int8_projection: Option<Int8Projection>,
    /// The audio features last given to [`TextDecoder::new_cache`] and their cross-attention
    /// keys and values (see there).
    cross_memo: RefCell<Option<CrossMemo>>,
}

/// Audio features (a shallow copy: the memo keeps them alive, so no other tensor can take
/// their address while it is kept) and each layer's cross-attention keys and values of them.
struct CrossMemo {
    features: Tensor,
    cross_attn: Vec<(Tensor, Tensor)>,
}

impl CrossMemo {
    /// Whether `features` is the very tensor the memo was made from: the same storage, offset,
    /// shape, strides and number format (the features are never changed in place).
    fn holds(&self, features: &Tensor) -> bool {
        let kept = &self.features;
        kept.data_ptr() == features.data_ptr()
            && kept.size() == features.size()
            && kept.stride() == features.stride()
            && kept.kind() == features.kind()
            && kept.device() == features.device()
    }
}

/// The decoder's vocabulary projection (`hidden @ token_embedding.T`, 51864 x 384 for tiny.en)
/// through a dynamically quantized int8 linear layer: the weight quantized once, per output row
/// (symmetric, scale = the row's largest magnitude / 127), each call's activations quantized on
/// the fly (`quantized::linear_dynamic`, FBGEMM; 7-bit activations as
/// `torch.ao.quantization.quantize_dynamic` uses on x86). In f32 it is half of a decoding
/// step's time on one core (measured here: 5.2 ms a call in f32, 2.65 ms in bf16 on AVX-512
/// BF16, 0.39 ms in int8).
///
/// int8 logits are off by up to ~2 % of the largest, enough to flip a near tie (tiny.en heard
/// "Okay lah," as "Okla," with them). So only the ranking comes from int8: the
/// [`EXACT_TOP_K`] likeliest tokens of each row and every special and timestamp token (from
/// `exact_from` on: the timestamp rules and the no-speech probability read those) are computed
/// again in the weights' own format. The softmax's mass is in those tokens, so the chosen token
/// and its log-probability are the exact ones unless the true best token was outside int8's
/// top [`EXACT_TOP_K`]. The ops run through `models/int8_linear.pt`, a TorchScript helper with
/// no weights (`scripts/models/int8_linear.py`), as tch binds no quantized op.
pub struct Int8Projection {
    helper: tch::CModule,
    /// `LinearPackedParamsBase` of the quantized weight.
    packed: tch::IValue,
    /// The first special token: it and all after it are projected exactly.
    exact_from: i64,
}

/// Tokens of each row projected again exactly after the int8 ranking (see [`Int8Projection`]).
pub const EXACT_TOP_K: i64 = 16;

impl Int8Projection {
    /// Quantizes `weight` (`[n_vocab, state]`, CPU) with the helper at `helper_path`.
    pub fn new(
        helper_path: &Path,
        weight: &Tensor,
        exact_from: i64,
    ) -> Result<Self, InferenceError> {
        let load_error = |source| InferenceError::ModelLoad {
            path: helper_path.to_path_buf(),
            source,
        };
        let helper = tch::CModule::load(helper_path).map_err(load_error)?;
        let weight = tch::IValue::Tensor(weight.to_kind(Kind::Float).contiguous());
        let packed = helper.method_is("pack", &[weight]).map_err(load_error)?;
        Ok(Int8Projection {
            helper,
            packed,
            exact_from,
        })
    }

    /// `[..., state]` → `[..., n_vocab]` f32 logits; `weight` is the projection's own
    /// (`[n_vocab, state]`), for the exact part.
    fn forward(&self, hidden: &Tensor, weight: &Tensor) -> Result<Tensor, TchError> {
        let input = tch::IValue::Tensor(hidden.f_to_kind(Kind::Float)?.f_contiguous()?);
        let approx = match self.helper.method_is("linear", &[&input, &self.packed])? {
            tch::IValue::Tensor(logits) => logits,
            other => {
                return Err(TchError::Kind(format!(
                    "int8_linear.pt linear returned {other:?}, not a tensor"
                )))
            }
        };
        let shape = approx.size();
        let (n_vocab, state) = (weight.size()[0], weight.size()[1]);
        let h = hidden.f_reshape([-1, state])?;
        let logits = approx.f_reshape([-1, n_vocab])?;
        // The special and timestamp tokens, exactly.
        let specials = weight.f_narrow(0, self.exact_from, n_vocab - self.exact_from)?;
        let exact = h.f_matmul(&specials.f_tr()?)?.f_to_kind(Kind::Float)?;
        logits
            .f_narrow(1, self.exact_from, n_vocab - self.exact_from)?
            .f_copy_(&exact)?;
        // The likeliest tokens, exactly.
        let (_, top) = logits.f_topk(EXACT_TOP_K, -1, true, false)?;
        let rows =
            weight
                .f_index_select(0, &top.f_flatten(0, -1)?)?
                .f_view([-1, EXACT_TOP_K, state])?;
        let exact = rows
            .f_matmul(&h.f_unsqueeze(-1)?)?
            .f_squeeze_dim(-1)?
            .f_to_kind(Kind::Float)?;
        logits.f_scatter(1, &top, &exact)?.f_view(shape.as_slice())
    }
}

/// The decoder's memory of one batch of windows: per layer, the self-attention keys/values of
/// the tokens so far and the cross-attention keys/values of the audio.
pub struct KvCache {
    self_attn: Vec<Option<(Tensor, Tensor)>>,
    cross_attn: Vec<(Tensor, Tensor)>,
}

impl KvCache {
    /// Tokens already seen; the next token's position.
    pub fn offset(&self) -> i64 {
        self.self_attn
            .first()
            .and_then(|c| c.as_ref())
            .map_or(0, |(k, _)| k.size()[2])
    }

    /// Reorders the self-attention rows as `rows` says, as many rows as before, leaving the
    /// cross-attention keys and values alone: in a beam search every row attends to the same
    /// audio, and copying those (2.3 MB a row and layer for tiny.en) at every step costs more
    /// than the step.
    pub fn select_self_rows(&mut self, rows: &[i64]) -> Result<(), TchError> {
        let Some(Some((k, _))) = self.self_attn.first() else {
            return Ok(());
        };
        let index = Tensor::f_from_slice(rows)?.f_to_device(k.device())?;
        for entry in self.self_attn.iter_mut() {
            if let Some((k, v)) = entry.as_ref() {
                *entry = Some((k.f_index_select(0, &index)?, v.f_index_select(0, &index)?));
            }
        }
        Ok(())
    }

    /// The cache as it was after its first `len` tokens, for `rows` rows that each continue
    /// from there one token at a time (forced decoding of several endings of one text). The
    /// audio's keys and values stay one row, shared as in the beam search.
    pub fn prefix_for_rows(&self, len: i64, rows: i64) -> Result<KvCache, TchError> {
        let mut self_attn = Vec::with_capacity(self.self_attn.len());
        for entry in &self.self_attn {
            self_attn.push(match entry {
                Some((k, v)) => {
                    let cut = |t: &Tensor| -> Result<Tensor, TchError> {
                        t.f_narrow(2, 0, len)?.f_repeat([rows, 1, 1, 1])
                    };
                    Some((cut(k)?, cut(v)?))
                }
                None => None,
            });
        }
        Ok(KvCache {
            self_attn,
            cross_attn: self
                .cross_attn
                .iter()
                .map(|(k, v)| (k.shallow_clone(), v.shallow_clone()))
                .collect(),
        })
    }

    /// Rows in the cache.
    pub fn rows(&self) -> i64 {
        self.cross_attn.first().map_or(0, |(k, _)| k.size()[0])
    }

    /// Keeps (and reorders) the batch rows listed in `rows` (`rearrange_kv_cache`).
    pub fn select_rows(&mut self, rows: &[i64]) -> Result<(), TchError> {
        let device = self
            .cross_attn
            .first()
            .map_or(Device::Cpu, |(k, _)| k.device());
        let index = Tensor::f_from_slice(rows)?.f_to_device(device)?;
        let pick = |(k, v): &(Tensor, Tensor)| -> Result<(Tensor, Tensor), TchError> {
            Ok((k.f_index_select(0, &index)?, v.f_index_select(0, &index)?))
        };
        for entry in self.self_attn.iter_mut() {
            if let Some(kv) = entry.as_ref() {
                *entry = Some(pick(kv)?);
            }
        }
        for entry in self.cross_attn.iter_mut() {
            *entry = pick(entry)?;
        }
        Ok(())
    }
}

impl TextDecoder {
    /// A fresh cache for `audio_features` `[batch, n_audio_ctx, n_audio_state]`.
    ///
    /// The audio's cross-attention keys and values are projected once per features tensor and
    /// kept until another one comes: a window is decoded (at each temperature of the fallback),
    /// aligned and scored by forced decoding against the same features, and for tiny.en the
    /// projection (2 × 4 layers of 1500 × 384 × 384) costs more than a 100-token forced pass.
    pub fn new_cache(&self, audio_features: &Tensor) -> Result<KvCache, TchError> {
        let mut memo = self.cross_memo.borrow_mut();
        let cross_attn = match memo.as_ref() {
            Some(kept) if kept.holds(audio_features) => &kept.cross_attn,
            _ => {
                let mut cross_attn = Vec::with_capacity(self.blocks.len());
                for block in &self.blocks {
                    if let Some((attn, _)) = &block.cross_attn {
                        cross_attn.push(attn.cross_kv(audio_features)?);
                    }
                }
                &memo
                    .insert(CrossMemo {
                        features: audio_features.shallow_clone(),
                        cross_attn,
                    })
                    .cross_attn
            }
        };
        Ok(KvCache {
            self_attn: self.blocks.iter().map(|_| None).collect(),
            cross_attn: cross_attn
                .iter()
                .map(|(k, v)| (k.shallow_clone(), v.shallow_clone()))
                .collect(),
        })
    }

    /// `tokens` `[batch, n]` after the cached ones → final hidden states `[batch, n, state]`.
    pub fn forward(&self, tokens: &Tensor, cache: &mut KvCache) -> Result<Tensor, TchError> {
        let offset = cache.offset();
        let n = tokens.size()[1];
        let positions = self.positional_embedding.f_narrow(0, offset, n)?;
        let mut x = Tensor::f_embedding(&self.token_embedding, tokens, -1, false, false)?
            .f_add(&positions)?;
        for ((block, self_cache), cross_kv) in self
            .blocks
            .iter()
            .zip(cache.self_attn.iter_mut())
            .zip(cache.cross_attn.iter())
        {
            x = block.forward(&x, Some(self_cache), Some(cross_kv), None)?;
        }
        self.ln.forward(&x)
    }

    /// The whole of `tokens` `[1, n]` against `audio_features` `[1, n_audio_ctx, state]` in one
    /// pass, as the reference's `find_alignment` runs the model with hooks on the cross-attention:
    /// the final hidden states `[1, n, state]` and, for each layer in `layers`, its
    /// cross-attention `qk` `[1, head, n, n_audio_ctx]` (f32, before the softmax).
    pub fn forward_with_cross_qk(
        &self,
        tokens: &Tensor,
        audio_features: &Tensor,
        layers: &[usize],
    ) -> Result<(Tensor, Vec<Option<Tensor>>), TchError> {
        let mut cache = self.new_cache(audio_features)?;
        let n = tokens.size()[1];
        let positions = self.positional_embedding.f_narrow(0, 0, n)?;
        let mut x = Tensor::f_embedding(&self.token_embedding, tokens, -1, false, false)?
            .f_add(&positions)?;
        let mut qks: Vec<Option<Tensor>> = self.blocks.iter().map(|_| None).collect();
        for (layer, ((block, self_cache), cross_kv)) in self
            .blocks
            .iter()
            .zip(cache.self_attn.iter_mut())
            .zip(cache.cross_attn.iter())
            .enumerate()
        {
            let capture = layers.contains(&layer).then_some(&mut qks[layer]);
            x = block.forward(&x, Some(self_cache), Some(cross_kv), capture)?;
        }
        Ok((self.ln.forward(&x)?, qks))
    }

    /// Logits over the vocabulary (`x @ token_embedding.T`), as f32: `[..., state]` → `[..., n_vocab]`;
    /// through the int8 projection where there is one (the likeliest tokens exact, see
    /// [`Int8Projection`]): for decoding, where only the likeliest tokens matter.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor, TchError> {
        match &self.int8_projection {
            Some(projection) => projection.forward(hidden, &self.token_embedding),
            None => self.exact_logits(hidden),
        }
    }

    /// [`TextDecoder::logits`] in the weights' own format for every token: for scoring given
    /// text (forced decoding, word alignment), whose tokens need not be the likeliest.
    pub fn exact_logits(&self, hidden: &Tensor) -> Result<Tensor, TchError> {
        hidden
            .f_matmul(&self.token_embedding.f_tr()?)?
            .f_to_kind(Kind::Float)
    }

    /// Projects onto the vocabulary in int8 from now on (see [`Int8Projection`]); only on the
    /// CPU, where FBGEMM runs (`Ok(false)` elsewhere: nothing changes). It is faster than bf16
    /// too where the CPU has native bf16 (measured on AVX-512 BF16: 2.65 ms a call in bf16,
    /// 0.39 ms in int8), so it applies whatever the weights' number format.
    /// `exact_from` is the first special token (see [`Int8Projection`]).
    pub fn quantize_projection(
        &mut self,
        helper_path: &Path,
        exact_from: i64,
    ) -> Result<bool, InferenceError> {
        if self.token_embedding.device() != Device::Cpu {
            return Ok(false);
        }
        self.int8_projection = Some(Int8Projection::new(
            helper_path,
            &self.token_embedding,
            exact_from,
        )?);
        Ok(true)
    }
}

/// The number format the network computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32: the reference's numbers exactly; the CPU fallback.
    Float32,
    /// bfloat16: CPUs with AMX or AVX-512 BF16 multiply it several times faster than f32.
    BFloat16,
    /// f16: CUDA.
    Float16,
}

impl Precision {
    /// f16 on CUDA; on the CPU bfloat16 where the CPU has native bfloat16 arithmetic (AMX or
    /// AVX-512 BF16; elsewhere libtorch emulates it, slower than f32), else f32.
    pub fn auto(device: Device) -> Precision {
        if device.is_cuda() {
            Precision::Float16
        } else if cpu_has_native_bf16() {
            Precision::BFloat16
        } else {
            Precision::Float32
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Precision::Float32 => Kind::Float,
            Precision::BFloat16 => Kind::BFloat16,
            Precision::Float16 => Kind::Half,
        }
    }
}

/// Whether /proc/cpuinfo lists `amx_bf16` or `avx512_bf16` (false where it cannot be read).
fn cpu_has_native_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|line| line.starts_with("flags"))
            .is_some_and(|flags| {
                flags
                    .split_whitespace()
                    .any(|flag| flag == "amx_bf16" || flag == "avx512_bf16")
            })
    })
}

/// `Whisper` of `model.py`: encoder, decoder and the mel filters of its front end.
pub struct WhisperModel {
    pub encoder: AudioEncoder,
    pub decoder: TextDecoder,
    /// `[n_mels, 201]` f32, always on the model's device.
    pub mel_filters: Tensor,
    pub kind: Kind,
}

impl WhisperModel {
    /// Reads `model.safetensors` into `precision`'s number format on `device`.
    pub fn load(
        path: &Path,
        config: &Config,
        device: Device,
        precision: Precision,
    ) -> Result<Self, InferenceError> {
        if !path.exists() {
            return Err(InferenceError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let tensors =
            Tensor::read_safetensors(path).map_err(|source| InferenceError::ModelLoad {
                path: path.to_path_buf(),
                source,
            })?;
        let kind = precision.kind();
        let mut w = Weights {
            tensors: tensors.into_iter().collect(),
            path,
            kind,
            device,
        };
        let mut load_blocks = |prefix: &str, count: usize, n_head: usize, cross: bool| {
            (0..count)
                .map(|i| {
                    ResidualAttentionBlock::load(
                        &mut w,
                        &format!("{prefix}.blocks.{i}"),
                        n_head,
                        cross,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let encoder_blocks =
            load_blocks("encoder", config.n_audio_layer, config.n_audio_head, false)?;
        let decoder_blocks = load_blocks("decoder", config.n_text_layer, config.n_text_head, true)?;
        let encoder = AudioEncoder {
            conv1: w.linear("encoder.conv1", true)?,
            conv2: w.linear("encoder.conv2", true)?,
            positional_embedding: w.take("encoder.positional_embedding")?,
            blocks: encoder_blocks,
            ln_post: w.layer_norm("encoder.ln_post")?,
        };
        let decoder = TextDecoder {
            token_embedding: w.take("decoder.token_embedding.weight")?,
            positional_embedding: w.take("decoder.positional_embedding")?,
            blocks: decoder_blocks,
            ln: w.layer_norm("decoder.ln")?,
            int8_projection: None,
            cross_memo: RefCell::new(None),
        };
        w.kind = Kind::Float;
        let mel_filters = w.take("mel_filters")?;
        let expected = [config.n_mels as i64, 201];
        if mel_filters.size() != expected
            || encoder.positional_embedding.size()[0] != config.n_audio_ctx as i64
        {
            return Err(InferenceError::ModelInvalid {
                path: path.to_path_buf(),
                reason: "its shapes disagree with config.json; convert it again".into(),
            });
        }
        Ok(WhisperModel {
            encoder,
            decoder,
            mel_filters,
            kind,
        })
    }
}
