//! Multi-head attention with grouped-query heads, rotary embeddings, an
//! optional additive mask and a KV cache.
//!
//! Checkpoint layouts of the q/k/v projections ([`AttentionConfig`]):
//! - separate `q_proj`/`k_proj`/`v_proj` Linears (HF CLIP, Llama, BERT-style
//!   names set with [`with_names`](AttentionConfig::with_names));
//! - one fused `qkv` Linear, rows all query heads, then key, then value
//!   heads ([`with_fused_qkv`](AttentionConfig::with_fused_qkv); timm, SigLIP
//!   in some ports);
//! - a fused `qkv.weight` without bias and separate `q_bias`/`v_bias`
//!   vectors, the key bias being zero
//!   ([`with_fused_qkv_split_bias`](AttentionConfig::with_fused_qkv_split_bias);
//!   BLIP-2's and EVA's vision attention).
//!
//! The output projection's name is free (`o_proj`, `out_proj`, `proj`,
//! BLIP-2's `projection`).

use crate::{Error, KvCache, Linear, Result, RotaryEmbedding, VarBuilder};
use tessera_tensor::{scaled_dot_product_attention, Tensor};

/// Sizes, options and weight names of a [`MultiHeadAttention`].
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionConfig {
    /// Model width: the input features of the projections and the output
    /// features of the output projection.
    pub hidden: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads; fewer than `num_heads` for grouped-query attention
    /// (`num_heads` must be a multiple of it).
    pub num_kv_heads: usize,
    /// Features per head.
    pub head_dim: usize,
    /// Input features of the key/value projections when they differ from
    /// `hidden` (cross-attention over another encoder's output).
    pub kv_input_dim: Option<usize>,
    /// Whether the q/k/v projections have biases.
    pub qkv_bias: bool,
    /// Whether the output projection has a bias.
    pub o_bias: bool,
    /// Name of the query projection (`"q_proj"`).
    pub q_name: String,
    /// Name of the key projection (`"k_proj"`).
    pub k_name: String,
    /// Name of the value projection (`"v_proj"`).
    pub v_name: String,
    /// Name of the output projection (`"o_proj"`; `"out_proj"` for CLIP).
    pub o_name: String,
    /// Name of a single fused q/k/v projection (timm's `"qkv"`), used instead
    /// of the three separate ones when set. Its rows are all query heads,
    /// then all key heads, then all value heads.
    pub fused_qkv: Option<String>,
    /// With a fused projection: names of separate query and value bias
    /// vectors (`"q_bias"`, `"v_bias"`) next to a bias-free fused weight; the
    /// key bias is zero.
    pub fused_split_bias: Option<(String, String)>,
    /// Causal masking (bottom-right aligned, so it holds with a KV cache).
    pub causal: bool,
    /// Score scale; `1 / sqrt(head_dim)` when `None`.
    pub scale: Option<f64>,
}

impl AttentionConfig {
    /// `num_heads` heads of `hidden / num_heads` features (rounded down: set
    /// [`with_head_dim`](Self::with_head_dim) when heads do not divide the
    /// width), as many KV heads, separate `q_proj`/`k_proj`/`v_proj`/`o_proj`
    /// without biases, not causal.
    pub fn new(hidden: usize, num_heads: usize) -> Self {
        AttentionConfig {
            hidden,
            num_heads,
            num_kv_heads: num_heads,
            head_dim: hidden.checked_div(num_heads).unwrap_or(0),
            kv_input_dim: None,
            qkv_bias: false,
            o_bias: false,
            q_name: "q_proj".into(),
            k_name: "k_proj".into(),
            v_name: "v_proj".into(),
            o_name: "o_proj".into(),
            fused_qkv: None,
            fused_split_bias: None,
            causal: false,
            scale: None,
        }
    }

    /// The same with `n` key/value heads.
    pub fn with_kv_heads(mut self, n: usize) -> Self {
        self.num_kv_heads = n;
        self
    }

    /// The same with `d` features per head.
    pub fn with_head_dim(mut self, d: usize) -> Self {
        self.head_dim = d;
        self
    }

    /// The same with key/value projections reading `dim` features.
    pub fn with_kv_input_dim(mut self, dim: usize) -> Self {
        self.kv_input_dim = Some(dim);
        self
    }

    /// The same with or without biases on q/k/v and on the output.
    pub fn with_bias(mut self, qkv: bool, o: bool) -> Self {
        self.qkv_bias = qkv;
        self.o_bias = o;
        self
    }

    /// The same with other projection names.
    pub fn with_names(mut self, q: &str, k: &str, v: &str, o: &str) -> Self {
        self.q_name = q.into();
        self.k_name = k.into();
        self.v_name = v.into();
        self.o_name = o.into();
        self
    }

    /// The same with another output projection name (`"out_proj"`).
    pub fn with_out_name(mut self, o: &str) -> Self {
        self.o_name = o.into();
        self
    }

    /// The same with one fused q/k/v projection called `name`.
    pub fn with_fused_qkv(mut self, name: &str) -> Self {
        self.fused_qkv = Some(name.into());
        self
    }

    /// The same with a fused q/k/v weight `name.weight` (no fused bias) and
    /// separate query and value biases named `q_bias` and `v_bias` beside it;
    /// the key bias is zero (BLIP-2, EVA).
    pub fn with_fused_qkv_split_bias(mut self, name: &str, q_bias: &str, v_bias: &str) -> Self {
        self.fused_qkv = Some(name.into());
        self.fused_split_bias = Some((q_bias.into(), v_bias.into()));
        self
    }

    /// The same, causal or not.
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    /// The same with a fixed score scale.
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Checks the head counts and sizes.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid("attention", msg));
        if self.hidden == 0 || self.num_heads == 0 || self.num_kv_heads == 0 || self.head_dim == 0 {
            return bad(format!(
                "hidden {}, heads {}, kv heads {} and head dim {} must all be positive",
                self.hidden, self.num_heads, self.num_kv_heads, self.head_dim
            ));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return bad(format!("{} query heads are not a multiple of {} key/value heads", self.num_heads, self.num_kv_heads));
        }
        if self.kv_input_dim == Some(0) {
            return bad("the key/value input width must be positive".into());
        }
        Ok(())
    }
}

/// The query/key/value projections: three layers or one fused layer.
// One per layer, built once: the size difference of the variants is of no
// consequence.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Qkv {
    Separate { q: Linear, k: Linear, v: Linear },
    Fused(Linear),
}

/// Multi-head attention: project, split heads `[b, h, t, d]`, rotate q and k
/// at the cache offset, append k/v to the cache, scaled dot-product
/// attention (grouped-query heads share KV heads), merge heads, project out.
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    qkv: Qkv,
    o: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    causal: bool,
    scale: Option<f64>,
    rotary: Option<RotaryEmbedding>,
}

impl MultiHeadAttention {
    /// Loads the projections named in `cfg` under `vb`'s prefix: `q` `[h*d,
    /// hidden]`, `k`/`v` `[h_kv*d, kv_in]`, `o` `[hidden, h*d]` (or one fused
    /// `[(h + 2 h_kv) d, hidden]`), with biases as configured.
    pub fn load(vb: &VarBuilder, cfg: &AttentionConfig) -> Result<MultiHeadAttention> {
        cfg.validate()?;
        let (q_out, kv_out) = (cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim);
        let kv_in = cfg.kv_input_dim.unwrap_or(cfg.hidden);
        let qkv = match &cfg.fused_qkv {
            Some(name) => {
                if kv_in != cfg.hidden {
                    return Err(Error::invalid("attention", "a fused q/k/v projection needs kv_input_dim == hidden"));
                }
                match &cfg.fused_split_bias {
                    None => Qkv::Fused(Linear::load(&vb.pp(name), cfg.hidden, q_out + 2 * kv_out, cfg.qkv_bias)?),
                    Some((q_bias, v_bias)) => {
                        let weight = vb.pp(name).get(vec![q_out + 2 * kv_out, cfg.hidden], "weight")?;
                        let (q_b, v_b) = (vb.get(q_out, q_bias)?, vb.get(kv_out, v_bias)?);
                        let k_b = Tensor::zeros(kv_out, v_b.dtype(), v_b.device())?;
                        Qkv::Fused(Linear::new(weight, Some(Tensor::cat(&[&q_b, &k_b, &v_b], 0)?))?)
                    }
                }
            }
            None => Qkv::Separate {
                q: Linear::load(&vb.pp(&cfg.q_name), cfg.hidden, q_out, cfg.qkv_bias)?,
                k: Linear::load(&vb.pp(&cfg.k_name), kv_in, kv_out, cfg.qkv_bias)?,
                v: Linear::load(&vb.pp(&cfg.v_name), kv_in, kv_out, cfg.qkv_bias)?,
            },
        };
        let o = Linear::load(&vb.pp(&cfg.o_name), q_out, cfg.hidden, cfg.o_bias)?;
        Ok(MultiHeadAttention {
            qkv,
            o,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            causal: cfg.causal,
            scale: cfg.scale,
            rotary: None,
        })
    }

    /// A layer from separate projections; their sizes must agree with the
    /// head counts of `cfg` (its names, biases and `hidden` are not used).
    pub fn new(q: Linear, k: Linear, v: Linear, o: Linear, cfg: &AttentionConfig) -> Result<MultiHeadAttention> {
        cfg.validate()?;
        let (q_out, kv_out) = (cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim);
        if q.out_dim() != q_out || k.out_dim() != kv_out || v.out_dim() != kv_out || o.in_dim() != q_out || k.in_dim() != v.in_dim() {
            return Err(Error::invalid(
                "attention",
                format!(
                    "projections q {:?}, k {:?}, v {:?}, o {:?} do not fit {} heads and {} kv heads of {} features",
                    q.rows().dims(),
                    k.rows().dims(),
                    v.rows().dims(),
                    o.rows().dims(),
                    cfg.num_heads,
                    cfg.num_kv_heads,
                    cfg.head_dim
                ),
            ));
        }
        Ok(MultiHeadAttention {
            qkv: Qkv::Separate { q, k, v },
            o,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            causal: cfg.causal,
            scale: cfg.scale,
            rotary: None,
        })
    }

    /// The same layer rotating queries and keys with `rotary` (whose
    /// rotated width must not exceed the head dim).
    pub fn with_rotary(mut self, rotary: RotaryEmbedding) -> Result<Self> {
        if rotary.rot_dim() > self.head_dim {
            return Err(Error::invalid("attention", format!("rotary width {} exceeds the head dim {}", rotary.rot_dim(), self.head_dim)));
        }
        self.rotary = Some(rotary);
        Ok(self)
    }

    /// The same layer, causal or not.
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    /// Query heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// Key/value heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_kv_heads
    }

    /// Features per head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Whether attention is causal.
    pub fn is_causal(&self) -> bool {
        self.causal
    }

    /// The rotary embedding, if any.
    pub fn rotary(&self) -> Option<&RotaryEmbedding> {
        self.rotary.as_ref()
    }

    /// The output projection.
    pub fn o_proj(&self) -> &Linear {
        &self.o
    }

    /// Self-attention of `x` `[b, t, hidden]` -> `[b, t, hidden]`.
    ///
    /// `mask` is additive (0 to keep, `-inf` or a large negative value to
    /// drop), any float dtype (it is cast to `x`'s), and broadcasts to
    /// `[b, heads, t, t_total]`, where `t_total` counts the cached positions
    /// too. With a `cache`, the new positions start at `cache.len()`: rotary
    /// embeddings use that offset, and keys/values are appended to it.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.check_input(x, "input")?;
        let (b, t) = (x.dims()[0], x.dims()[1]);
        let (q, k, v) = match &self.qkv {
            Qkv::Separate { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
            Qkv::Fused(qkv) => {
                let all = qkv.forward(x)?;
                let (qn, kvn) = (self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim);
                (all.narrow(2, 0, qn)?, all.narrow(2, qn, kvn)?, all.narrow(2, qn + kvn, kvn)?)
            }
        };
        let q = self.split_heads(&q, b, t, self.num_heads)?;
        let k = self.split_heads(&k, b, t, self.num_kv_heads)?;
        let v = self.split_heads(&v, b, t, self.num_kv_heads)?;
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let (q, k) = match &self.rotary {
            Some(r) => (r.apply(&q, offset)?, r.apply(&k, offset)?),
            None => (q, k),
        };
        self.attend(&q, k, v, mask, cache, b, t)
    }

    /// Cross-attention: queries from `x` `[b, t, hidden]`, keys and values
    /// from `context` `[b, s, kv_in]`; no rotary embedding. To project a
    /// context once and reuse it, fill a [`KvCache`] with
    /// [`project_kv`](Self::project_kv) and call
    /// [`attend_cached`](Self::attend_cached).
    pub fn forward_cross(&self, x: &Tensor, context: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.check_input(x, "input")?;
        self.check_input(context, "context")?;
        let (b, t) = (x.dims()[0], x.dims()[1]);
        let s = context.dims()[1];
        if context.dims()[0] != b {
            return Err(Error::invalid("attention", format!("input {:?} and context {:?} differ in batch", x.dims(), context.dims())));
        }
        let (q, k, v) = match &self.qkv {
            Qkv::Separate { q, k, v } => (q.forward(x)?, k.forward(context)?, v.forward(context)?),
            Qkv::Fused(_) => return Err(Error::invalid("attention", "cross-attention needs separate q/k/v projections")),
        };
        let q = self.split_heads(&q, b, t, self.num_heads)?;
        let k = self.split_heads(&k, b, s, self.num_kv_heads)?;
        let v = self.split_heads(&v, b, s, self.num_kv_heads)?;
        self.attend(&q, k, v, mask, None, b, t)
    }

    /// Attention of `x` `[b, t, hidden]` over keys/values already in
    /// `cache` (e.g. a projected cross-attention context): no new keys are
    /// computed and no rotary embedding is applied.
    pub fn attend_cached(&self, x: &Tensor, mask: Option<&Tensor>, cache: &KvCache) -> Result<Tensor> {
        self.check_input(x, "input")?;
        let (b, t) = (x.dims()[0], x.dims()[1]);
        let (k, v) = match (cache.k(), cache.v()) {
            (Some(k), Some(v)) => (k, v),
            _ => return Err(Error::invalid("attention", "the cache is empty")),
        };
        let q = match &self.qkv {
            Qkv::Separate { q, .. } => q.forward(x)?,
            Qkv::Fused(qkv) => qkv.forward(x)?.narrow(2, 0, self.num_heads * self.head_dim)?,
        };
        let q = self.split_heads(&q, b, t, self.num_heads)?;
        self.attend(&q, k, v, mask, None, b, t)
    }

    /// Projects `context` `[b, s, kv_in]` to keys and values `[b, h_kv, s,
    /// d]` (for caching a cross-attention context).
    pub fn project_kv(&self, context: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_input(context, "context")?;
        let (b, s) = (context.dims()[0], context.dims()[1]);
        let (k, v) = match &self.qkv {
            Qkv::Separate { k, v, .. } => (k.forward(context)?, v.forward(context)?),
            Qkv::Fused(qkv) => {
                let all = qkv.forward(context)?;
                let (qn, kvn) = (self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim);
                (all.narrow(2, qn, kvn)?, all.narrow(2, qn + kvn, kvn)?)
            }
        };
        Ok((self.split_heads(&k, b, s, self.num_kv_heads)?, self.split_heads(&v, b, s, self.num_kv_heads)?))
    }

    fn check_input(&self, x: &Tensor, what: &str) -> Result<()> {
        if x.rank() != 3 {
            return Err(Error::invalid("attention", format!("{what} must be [batch, time, features], got shape {:?}", x.dims())));
        }
        Ok(())
    }

    /// `[b, t, h*d] -> [b, h, t, d]` (a view).
    fn split_heads(&self, x: &Tensor, b: usize, t: usize, heads: usize) -> Result<Tensor> {
        Ok(x.reshape(vec![b, t, heads, self.head_dim])?.transpose(1, 2)?)
    }

    /// Caches k/v if asked, runs attention, merges heads, projects out.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        q: &Tensor,
        k: Tensor,
        v: Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        b: usize,
        t: usize,
    ) -> Result<Tensor> {
        let (k, v) = match cache {
            Some(c) => c.append(&k, &v)?,
            None => (k, v),
        };
        let mask = match mask {
            Some(m) if !m.dtype().is_float() => {
                return Err(Error::invalid("attention", format!("the mask must be additive floats, got dtype {}", m.dtype())))
            }
            Some(m) => Some(m.to_dtype(q.dtype())?),
            None => None,
        };
        let out = scaled_dot_product_attention(q, &k, &v, mask.as_ref(), self.causal, self.scale)?;
        let merged = out.transpose(1, 2)?.reshape(vec![b, t, self.num_heads * self.head_dim])?;
        self.o.forward(&merged)
    }
}
