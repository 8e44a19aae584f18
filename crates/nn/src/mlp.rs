//! Transformer feed-forward blocks: the two-layer MLP (`fc1 -> act -> fc2`)
//! and the gated SwiGLU (`down(act(gate(x)) * up(x))`).

use crate::{Activation, Linear, Module, Result, VarBuilder};
use tessera_tensor::Tensor;

/// Sizes, activation and weight names of an [`Mlp`].
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Model width (input and output features).
    pub hidden: usize,
    /// Inner width.
    pub intermediate: usize,
    /// Activation between the two layers.
    pub act: Activation,
    /// Whether both layers have a bias.
    pub bias: bool,
    /// Name of the first layer (`"fc1"` by default; `"c_fc"`, `"dense_h_to_4h"`...).
    pub fc1: String,
    /// Name of the second layer (`"fc2"` by default).
    pub fc2: String,
}

impl MlpConfig {
    /// `fc1`/`fc2` with biases, the HF CLIP / SigLIP / ViT layout.
    pub fn new(hidden: usize, intermediate: usize, act: Activation) -> Self {
        MlpConfig { hidden, intermediate, act, bias: true, fc1: "fc1".into(), fc2: "fc2".into() }
    }

    /// The same with other layer names.
    pub fn with_names(mut self, fc1: &str, fc2: &str) -> Self {
        self.fc1 = fc1.into();
        self.fc2 = fc2.into();
        self
    }

    /// The same with or without biases.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// Two linear layers around an activation: `fc2(act(fc1(x)))`.
#[derive(Clone, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

/// The GELU-family MLP of ViT/CLIP-style blocks (an [`Mlp`] whose activation
/// is configurable).
pub type GeluMlp = Mlp;

impl Mlp {
    /// A block from its layers.
    pub fn new(fc1: Linear, fc2: Linear, act: Activation) -> Self {
        Mlp { fc1, fc2, act }
    }

    /// Loads `{fc1}` `[intermediate, hidden]` and `{fc2}` `[hidden, intermediate]`.
    pub fn load(vb: &VarBuilder, cfg: &MlpConfig) -> Result<Mlp> {
        let fc1 = Linear::load(&vb.pp(&cfg.fc1), cfg.hidden, cfg.intermediate, cfg.bias)?;
        let fc2 = Linear::load(&vb.pp(&cfg.fc2), cfg.intermediate, cfg.hidden, cfg.bias)?;
        Ok(Mlp { fc1, fc2, act: cfg.act })
    }

    /// The first layer.
    pub fn fc1(&self) -> &Linear {
        &self.fc1
    }

    /// The second layer.
    pub fn fc2(&self) -> &Linear {
        &self.fc2
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// `x [..., hidden] -> [..., hidden]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward_act(x, self.act)?)
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Mlp::forward(self, x)
    }
}

/// Sizes, activation and weight names of a [`SwiGlu`].
#[derive(Clone, Debug, PartialEq)]
pub struct SwiGluConfig {
    /// Model width.
    pub hidden: usize,
    /// Inner width.
    pub intermediate: usize,
    /// Activation of the gate (SiLU for SwiGLU; GELU-tanh gives Gemma's GeGLU).
    pub act: Activation,
    /// Whether the three layers have biases.
    pub bias: bool,
    /// Name of the gate projection (`"gate_proj"`).
    pub gate: String,
    /// Name of the up projection (`"up_proj"`).
    pub up: String,
    /// Name of the down projection (`"down_proj"`).
    pub down: String,
}

impl SwiGluConfig {
    /// The HF Llama layout: `gate_proj`, `up_proj`, `down_proj`, SiLU, no biases.
    pub fn new(hidden: usize, intermediate: usize) -> Self {
        SwiGluConfig {
            hidden,
            intermediate,
            act: Activation::Silu,
            bias: false,
            gate: "gate_proj".into(),
            up: "up_proj".into(),
            down: "down_proj".into(),
        }
    }

    /// The same with other layer names.
    pub fn with_names(mut self, gate: &str, up: &str, down: &str) -> Self {
        self.gate = gate.into();
        self.up = up.into();
        self.down = down.into();
        self
    }

    /// The same with or without biases.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The same with another gate activation.
    pub fn with_activation(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }
}

/// The gated MLP of Llama-style blocks: `down(act(gate(x)) * up(x))`.
#[derive(Clone, Debug)]
pub struct SwiGlu {
    gate: Linear,
    up: Linear,
    down: Linear,
    act: Activation,
}

impl SwiGlu {
    /// A block from its layers, with SiLU as the gate activation.
    pub fn new(gate: Linear, up: Linear, down: Linear) -> Self {
        SwiGlu { gate, up, down, act: Activation::Silu }
    }

    /// The same block with another gate activation.
    pub fn with_activation(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }

    /// Loads `{gate}`, `{up}` `[intermediate, hidden]` and `{down}`
    /// `[hidden, intermediate]`.
    pub fn load(vb: &VarBuilder, cfg: &SwiGluConfig) -> Result<SwiGlu> {
        let gate = Linear::load(&vb.pp(&cfg.gate), cfg.hidden, cfg.intermediate, cfg.bias)?;
        let up = Linear::load(&vb.pp(&cfg.up), cfg.hidden, cfg.intermediate, cfg.bias)?;
        let down = Linear::load(&vb.pp(&cfg.down), cfg.intermediate, cfg.hidden, cfg.bias)?;
        Ok(SwiGlu { gate, up, down, act: cfg.act })
    }

    /// The gate projection.
    pub fn gate(&self) -> &Linear {
        &self.gate
    }

    /// The up projection.
    pub fn up(&self) -> &Linear {
        &self.up
    }

    /// The down projection.
    pub fn down(&self) -> &Linear {
        &self.down
    }

    /// `x [..., hidden] -> [..., hidden]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gated = self.gate.forward_act(x, self.act)?.mul(&self.up.forward(x)?)?;
        self.down.forward(&gated)
    }
}

impl Module for SwiGlu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        SwiGlu::forward(self, x)
    }
}
