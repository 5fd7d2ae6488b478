//! Multilayer perceptron: any layer sizes, one hidden activation, linear output layer,
//! optionally time as an extra input. One generic forward pass serves `f64` simulation and
//! num-dual derivatives.
//!
//! Parameter layout (flat vector `θ`): for each layer `l` (input → output), first the weights
//! `W_l` row-major (`[out][in]`), then the biases `b_l`. See [`Mlp::weight_index`] and
//! [`Mlp::bias_index`].

use crate::structure::{Structure, TimeBasis};
use crate::{Activation, ModelError, Normalization};
use num_dual::DualNum;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format version written into model files.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// A multilayer perceptron `f_θ(y[, t])`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mlp {
    /// Format version of the file this model came from or goes to.
    pub format_version: u32,
    /// Layer sizes `[n_in, h_1, …, n_out]`; with `time_input`, `n_in` counts the time.
    pub layers: Vec<usize>,
    /// Hidden-layer activation (the output layer is linear).
    pub activation: Activation,
    /// True when the last input is the time `t`.
    pub time_input: bool,
    /// Parameters in the documented layout; with a [`TimeBasis`], `degree + 1` such vectors
    /// one after the other (the coefficients θ_0 … θ_d).
    pub params: Vec<f64>,
    /// How the network enters the ODE (default: black box; omitted from files then).
    #[serde(default, skip_serializing_if = "Structure::is_black_box")]
    pub structure: Structure,
    /// Time-dependent weights, if any (omitted from files when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_basis: Option<TimeBasis>,
    /// The coordinates the network works in, if not the data's own (omitted when absent):
    /// the model is `dy/dt = (σ/T) ⊙ F((y − μ)/σ[, (t − t₀)/T])` with `F` the structure
    /// applied to the network in those coordinates; a time basis then spans the normalized
    /// window, and a gray box's known matrix is the normalized one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<Normalization>,
}

/// Number of parameters of a network with these layer sizes.
pub fn parameter_count(layers: &[usize]) -> usize {
    layers.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
}

impl Mlp {
    /// A network with Xavier/Glorot-uniform weights (`±√(6/(fan_in + fan_out))`) and zero
    /// biases, drawn from ChaCha8 seeded with `seed` (the same numbers on every platform).
    pub fn xavier(
        layers: &[usize],
        activation: Activation,
        time_input: bool,
        seed: u64,
    ) -> Result<Self, ModelError> {
        validate_layers(layers, time_input)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Vec::with_capacity(parameter_count(layers));
        for w in layers.windows(2) {
            let (n_in, n_out) = (w[0], w[1]);
            let limit = (6.0 / (n_in + n_out) as f64).sqrt();
            params.extend((0..n_in * n_out).map(|_| rng.gen_range(-limit..limit)));
            params.extend(std::iter::repeat_n(0.0, n_out));
        }
        Ok(Self {
            format_version: MODEL_FORMAT_VERSION,
            layers: layers.to_vec(),
            activation,
            time_input,
            params,
            structure: Structure::BlackBox,
            time_basis: None,
            normalization: None,
        })
    }

    /// The same network in another structure and/or with time-dependent weights: the current
    /// parameters become the constant coefficient θ_0 (so the model starts as it was) and
    /// the higher coefficients start at zero. Checked by [`Mlp::validate`].
    pub fn with_structure(
        mut self,
        structure: Structure,
        time_basis: Option<TimeBasis>,
    ) -> Result<Self, ModelError> {
        let n = parameter_count(&self.layers);
        self.params.truncate(n);
        if let Some(b) = &time_basis {
            self.params.resize(n * b.len(), 0.0);
        }
        self.structure = structure;
        self.time_basis = time_basis;
        self.validate()?;
        Ok(self)
    }

    /// Parameters of one network (one coefficient vector of a time basis).
    pub fn weights_per_copy(&self) -> usize {
        parameter_count(&self.layers)
    }

    /// True for a black box with constant weights in the data's own coordinates (what the
    /// collocation NLP handles).
    pub fn is_plain(&self) -> bool {
        self.structure.is_black_box() && self.time_basis.is_none() && self.normalization.is_none()
    }

    /// The same network working in the coordinates `normalization` (or the data's own with
    /// `None`); the parameters are kept as they are. Checked by [`Mlp::validate`].
    pub fn with_normalization(
        mut self,
        normalization: Option<Normalization>,
    ) -> Result<Self, ModelError> {
        self.normalization = normalization;
        self.validate()?;
        Ok(self)
    }

    /// The network alone: this model without its normalization, i.e. the ODE of the
    /// normalized coordinates.
    pub fn network_only(&self) -> Self {
        Self {
            normalization: None,
            ..self.clone()
        }
    }

    /// The window `[t0, t1]` of the time basis in the data's time (a normalized model keeps
    /// it in its own time τ), or `None` for constant weights. Outside it the weights
    /// extrapolate their polynomials.
    pub fn time_basis_window(&self) -> Option<(f64, f64)> {
        let b = self.time_basis.as_ref()?;
        Some(match &self.normalization {
            Some(n) => (n.time_from_normalized(b.t0), n.time_from_normalized(b.t1)),
            None => (b.t0, b.t1),
        })
    }

    /// The network's weights at time `t` from the full parameter vector `params`: `params`
    /// itself without a time basis, else `Σ_i p_i(τ(t)) θ_i` written into `buf`.
    pub fn params_at<'a>(&self, params: &'a [f64], t: f64, buf: &'a mut Vec<f64>) -> &'a [f64] {
        let Some(basis) = &self.time_basis else {
            return params;
        };
        let n = self.weights_per_copy();
        let mut p = [0.0; 16];
        let mut p_heap = Vec::new();
        let p: &mut [f64] = if basis.len() <= 16 {
            &mut p[..basis.len()]
        } else {
            p_heap.resize(basis.len(), 0.0);
            &mut p_heap
        };
        basis.values(t, p);
        buf.clear();
        buf.extend(params[..n].iter().map(|v| v * p[0]));
        for (i, pi) in p.iter().enumerate().skip(1) {
            for (b, v) in buf.iter_mut().zip(&params[i * n..(i + 1) * n]) {
                *b += pi * v;
            }
        }
        buf
    }

    /// The ODE right-hand side `dy = F(t, y)` of this model (structure, time input,
    /// time-dependent weights and normalization included), in `f64`.
    pub fn vector_field(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        let Some(n) = &self.normalization else {
            return self.network_field(t, y, dy);
        };
        let z = n.state_to_normalized(y);
        self.network_field(n.time_to_normalized(t), &z, dy);
        n.rate_from_normalized(dy);
    }

    /// The right-hand side in the network's own coordinates (normalization not applied).
    fn network_field(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        let mut input = Vec::with_capacity(self.layers[0]);
        input.extend_from_slice(y);
        if self.time_input {
            input.push(t);
        }
        let mut buf = Vec::new();
        let params = self.params_at(&self.params, t, &mut buf);
        let mut net = vec![0.0; self.n_outputs()];
        let mut scratch = vec![0.0; 2 * self.max_width()];
        self.forward_with(params, &input, &mut net, &mut scratch);
        self.structure.assemble(y, &net, dy);
    }

    /// A network initialized as PyTorch's `nn.Linear` does by default (weights and biases
    /// uniform in `±1/√fan_in`), drawn from ChaCha8 seeded with `seed` — the start of the
    /// homotopy paper's experiments.
    pub fn torch_default(
        layers: &[usize],
        activation: Activation,
        time_input: bool,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let mut m = Self::xavier(layers, activation, time_input, seed)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        m.params.clear();
        for w in layers.windows(2) {
            let (n_in, n_out) = (w[0], w[1]);
            let limit = 1.0 / (n_in as f64).sqrt();
            m.params
                .extend((0..n_in * n_out + n_out).map(|_| rng.gen_range(-limit..limit)));
        }
        Ok(m)
    }

    /// Checks layer sizes, parameter count and finiteness.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_layers(&self.layers, self.time_input)?;
        let copies = self.time_basis.as_ref().map_or(1, TimeBasis::len);
        let expected = parameter_count(&self.layers) * copies;
        if let Some(b) = &self.time_basis {
            b.validate().map_err(ModelError::Mismatch)?;
        }
        let outputs = self
            .structure
            .network_outputs(self.state_inputs())
            .map_err(ModelError::Mismatch)?;
        if outputs != self.n_outputs() {
            return Err(ModelError::Mismatch(format!(
                "a {} model of {} states needs {outputs} network outputs, the layers give {}",
                self.structure.name(),
                self.state_inputs(),
                self.n_outputs()
            )));
        }
        if self.params.len() != expected {
            return Err(ModelError::ParameterCount {
                layers: self.layers.clone(),
                got: self.params.len(),
                expected,
            });
        }
        if let Some(n) = &self.normalization {
            n.validate(self.state_inputs())?;
            match self.structure {
                Structure::BlackBox => {}
                Structure::SecondOrder if n.keeps_second_order() => {}
                Structure::SecondOrder => {
                    return Err(ModelError::Mismatch(
                        "a second-order model's normalization must leave velocities unshifted and \
                         scale them by (position scale)/T, so that q' = v holds in its coordinates"
                            .into(),
                    ))
                }
                // A gray box's known matrix is stated in the normalized coordinates.
                Structure::GrayBox { .. } => {}
            }
        }
        if let Some(index) = self.params.iter().position(|p| !p.is_finite()) {
            return Err(ModelError::NonFinite {
                what: "parameters",
                index,
            });
        }
        Ok(())
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    /// Number of state inputs (inputs without the time).
    pub fn state_inputs(&self) -> usize {
        self.layers[0] - usize::from(self.time_input)
    }

    /// Number of outputs.
    pub fn n_outputs(&self) -> usize {
        *self.layers.last().expect("validated: at least two layers")
    }

    /// Widest layer (scratch size for [`Mlp::forward_with`]).
    pub fn max_width(&self) -> usize {
        self.layers.iter().copied().max().unwrap_or(0)
    }

    fn layer_offset(&self, layer: usize) -> usize {
        self.layers[..=layer]
            .windows(2)
            .map(|w| w[0] * w[1] + w[1])
            .sum()
    }

    /// Index in `θ` of the weight from input `input` to output `output` of layer `layer`.
    pub fn weight_index(&self, layer: usize, output: usize, input: usize) -> usize {
        self.layer_offset(layer) + output * self.layers[layer] + input
    }

    /// Index in `θ` of the bias of output `output` of layer `layer`.
    pub fn bias_index(&self, layer: usize, output: usize) -> usize {
        self.layer_offset(layer) + self.layers[layer] * self.layers[layer + 1] + output
    }

    /// Explains why the model cannot serve a problem with `states` states (and time input or not).
    pub fn check_fits(&self, states: usize, time_input: bool) -> Result<(), ModelError> {
        self.validate()?;
        let describe = |n: usize, t: bool| {
            if t {
                format!("{n} states + time")
            } else {
                format!("{n} states without time")
            }
        };
        if self.state_inputs() != states || self.time_input != time_input {
            return Err(ModelError::Mismatch(format!(
                "model takes {} inputs ({}) and gives {} outputs, but the problem has {}",
                self.layers[0],
                describe(self.state_inputs(), self.time_input),
                self.n_outputs(),
                describe(states, time_input)
            )));
        }
        Ok(())
    }

    /// `out = f_θ(input)` for any scalar type; `scratch` needs `2 × max_width` entries.
    pub fn forward_with<D: DualNum<Primitive = f64> + Copy>(
        &self,
        params: &[D],
        input: &[D],
        out: &mut [D],
        scratch: &mut [D],
    ) {
        let w = self.max_width();
        let (a, b) = scratch.split_at_mut(w);
        let (mut cur, mut next) = (a, b);
        cur[..input.len()].copy_from_slice(input);
        let n_layers = self.layers.len() - 1;
        let mut offset = 0;
        for l in 0..n_layers {
            let (n_in, n_out) = (self.layers[l], self.layers[l + 1]);
            let weights = &params[offset..offset + n_in * n_out];
            let biases = &params[offset + n_in * n_out..offset + n_in * n_out + n_out];
            for o in 0..n_out {
                let mut z = biases[o];
                for (wi, xi) in weights[o * n_in..(o + 1) * n_in].iter().zip(&cur[..n_in]) {
                    z += *wi * *xi;
                }
                next[o] = if l + 1 < n_layers {
                    self.activation.apply(z)
                } else {
                    z
                };
            }
            offset += n_in * n_out + n_out;
            std::mem::swap(&mut cur, &mut next);
        }
        out.copy_from_slice(&cur[..self.n_outputs()]);
    }

    /// `f_θ(input)` in `f64` with this model's own parameters (allocates its scratch).
    pub fn forward(&self, input: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_outputs()];
        let mut scratch = vec![0.0; 2 * self.max_width()];
        self.forward_with(&self.params, input, &mut out, &mut scratch);
        out
    }

    /// The model as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a model always serializes")
    }

    /// Parses and validates a model from JSON; `path` names the source in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Self, ModelError> {
        let m: Mlp = serde_json::from_str(text).map_err(|e| {
            // serde_json ends its message with the location, which the error names already.
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let mut message = message
                .strip_suffix(&suffix)
                .unwrap_or(&message)
                .to_string();
            // Not JSON at all (a problem file, a CSV): say what a model file is.
            if e.is_syntax() && !text.trim_start().starts_with('{') {
                message.push_str(
                    " (a model file is the JSON `model.json` that `colloc solve`, `train` or `admm` writes)",
                );
            }
            ModelError::Parse {
                path: path.to_string(),
                line: e.line(),
                column: e.column(),
                message,
            }
        })?;
        if m.format_version != MODEL_FORMAT_VERSION {
            return Err(ModelError::Parse { path: path.to_string(), line: 1, column: 1, message: format!("format_version {} is not supported (this colloc writes {MODEL_FORMAT_VERSION})", m.format_version) });
        }
        m.validate()?;
        Ok(m)
    }

    /// Loads a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Saves atomically: a temporary file in the same folder, then a rename.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        write_atomic(path, self.to_json().as_bytes()).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }
}

fn validate_layers(layers: &[usize], time_input: bool) -> Result<(), ModelError> {
    let bad = |reason: &str| {
        Err(ModelError::InvalidLayers {
            layers: layers.to_vec(),
            reason: reason.to_string(),
        })
    };
    if layers.len() < 2 {
        return bad("need at least an input and an output layer");
    }
    if layers.contains(&0) {
        return bad("every layer needs at least one unit");
    }
    if time_input && layers[0] < 2 {
        return bad("with time input the first layer needs at least one state and the time");
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::{Dual64, HyperDual64};

    #[test]
    fn torch_default_init_draws_within_one_over_root_fan_in() {
        let m = Mlp::torch_default(&[3, 50, 50, 3], Activation::Gelu, false, 10).unwrap();
        assert_eq!(m.n_params(), parameter_count(&[3, 50, 50, 3]));
        let first = &m.params[..3 * 50 + 50];
        let bound = 1.0 / 3f64.sqrt();
        assert!(first.iter().all(|w| w.abs() < bound));
        // Biases are drawn too, and the spread fills the interval.
        assert!(first[150..].iter().any(|b| *b != 0.0));
        assert!(first.iter().map(|w| w.abs()).fold(0.0, f64::max) > 0.9 * bound);
        assert_eq!(
            m,
            Mlp::torch_default(&[3, 50, 50, 3], Activation::Gelu, false, 10).unwrap()
        );
    }

    fn small() -> Mlp {
        let mut m = Mlp::xavier(&[2, 3, 2], Activation::Tanh, false, 0).unwrap();
        m.params = (0..m.n_params()).map(|i| 0.1 * (i as f64) - 0.7).collect();
        m
    }

    /// The time basis's window in the data's time: as stored, or mapped back from τ for a
    /// normalized model; none for constant weights.
    #[test]
    fn time_basis_window_is_given_in_the_data_time() {
        assert_eq!(small().time_basis_window(), None);
        let basis = TimeBasis {
            kind: crate::BasisKind::Legendre,
            degree: 2,
            t0: 0.0,
            t1: 1.0,
        };
        let m = small()
            .with_structure(Structure::BlackBox, Some(basis))
            .unwrap();
        assert_eq!(m.time_basis_window(), Some((0.0, 1.0)));
        let n = Normalization {
            state_shift: vec![0.0, 0.0],
            state_scale: vec![1.0, 1.0],
            time_shift: 2.0,
            time_scale: 4.0,
        };
        let m = m.with_normalization(Some(n)).unwrap();
        assert_eq!(m.time_basis_window(), Some((2.0, 6.0)));
    }

    #[test]
    fn forward_matches_a_hand_computation() {
        let m = small();
        let x = [0.3, -0.2];
        let p = &m.params;
        let mut expect = [0.0; 2];
        let h: Vec<f64> = (0..3)
            .map(|j| {
                (p[m.weight_index(0, j, 0)] * x[0]
                    + p[m.weight_index(0, j, 1)] * x[1]
                    + p[m.bias_index(0, j)])
                .tanh()
            })
            .collect();
        for (o, e) in expect.iter_mut().enumerate() {
            *e = (0..3)
                .map(|j| p[m.weight_index(1, o, j)] * h[j])
                .sum::<f64>()
                + p[m.bias_index(1, o)];
        }
        let y = m.forward(&x);
        assert!((y[0] - expect[0]).abs() < 1e-15 && (y[1] - expect[1]).abs() < 1e-15);
        assert_eq!(m.bias_index(1, 1), m.n_params() - 1);
    }

    #[test]
    fn dual_derivatives_match_finite_differences() {
        let m = Mlp::xavier(&[3, 5, 4, 2], Activation::Gelu, true, 7).unwrap();
        let x = [0.4, -0.3, 1.2];
        let h = 1e-6;
        let mut scratch = vec![Dual64::from_re(0.0); 2 * m.max_width()];
        for k in 0..m.n_params() {
            let params: Vec<Dual64> = m
                .params
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    if i == k {
                        Dual64::from_re(p).derivative()
                    } else {
                        Dual64::from_re(p)
                    }
                })
                .collect();
            let input: Vec<Dual64> = x.iter().map(|&v| Dual64::from_re(v)).collect();
            let mut out = vec![Dual64::from_re(0.0); 2];
            m.forward_with(&params, &input, &mut out, &mut scratch);
            let (mut mp, mut mm) = (m.clone(), m.clone());
            mp.params[k] += h;
            mm.params[k] -= h;
            let (yp, ym) = (mp.forward(&x), mm.forward(&x));
            for o in 0..2 {
                let fd = (yp[o] - ym[o]) / (2.0 * h);
                assert!(
                    (out[o].eps - fd).abs() < 1e-7 * fd.abs().max(1.0),
                    "dθ_{k} out {o}: {} vs {fd}",
                    out[o].eps
                );
            }
        }
        // A second derivative in the inputs by hyper-duals vs FD of first derivatives.
        let mut scratch = vec![HyperDual64::from_re(0.0); 2 * m.max_width()];
        let params: Vec<HyperDual64> = m.params.iter().map(|&p| HyperDual64::from_re(p)).collect();
        let input = [
            HyperDual64::from_re(x[0]).derivative1(),
            HyperDual64::from_re(x[1]).derivative2(),
            HyperDual64::from_re(x[2]),
        ];
        let mut out = vec![HyperDual64::from_re(0.0); 2];
        m.forward_with(&params, &input, &mut out, &mut scratch);
        let d0 = |x1: f64| {
            let f = |x0: f64| m.forward(&[x0, x1, x[2]])[0];
            (f(x[0] + h) - f(x[0] - h)) / (2.0 * h)
        };
        let fd = (d0(x[1] + 1e-4) - d0(x[1] - 1e-4)) / 2e-4;
        assert!(
            (out[0].eps1eps2 - fd).abs() < 1e-5,
            "{} vs {fd}",
            out[0].eps1eps2
        );
    }

    #[test]
    fn xavier_is_deterministic_bounded_and_pinned() {
        let a = Mlp::xavier(&[2, 32, 2], Activation::Tanh, false, 42).unwrap();
        let b = Mlp::xavier(&[2, 32, 2], Activation::Tanh, false, 42).unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a.params,
            Mlp::xavier(&[2, 32, 2], Activation::Tanh, false, 43)
                .unwrap()
                .params
        );
        assert_eq!(a.n_params(), 2 * 32 + 32 + 32 * 2 + 2);
        let limit = (6.0f64 / 34.0).sqrt();
        assert!(a.params[..64].iter().all(|w| w.abs() < limit));
        assert!(a.params[64..96].iter().all(|b| *b == 0.0));
        // Pinned: ChaCha8 with seed 42 must give these first weights on every platform.
        let first: Vec<String> = a.params[..3].iter().map(|v| format!("{v:.12}")).collect();
        assert_eq!(first, PINNED_XAVIER_42, "the RNG stream changed");
    }

    const PINNED_XAVIER_42: [&str; 3] = ["0.152823369269", "0.378307011415", "-0.060898402499"];

    #[test]
    fn save_load_round_trip_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("colloc-mlp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let m = Mlp::xavier(&[3, 8, 2], Activation::Softplus, true, 1).unwrap();
        let path = dir.join("model.json");
        m.save(&path).unwrap();
        assert_eq!(Mlp::load(&path).unwrap(), m);
        // Wrong parameter count.
        let mut bad = m.clone();
        bad.params.pop();
        std::fs::write(&path, bad.to_json()).unwrap();
        let err = Mlp::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("has 49 parameters but layer sizes [3, 8, 2] need 50"),
            "{err}"
        );
        // Not JSON.
        std::fs::write(&path, "{\n  \"layers\": [2,\n").unwrap();
        let err = Mlp::load(&path).unwrap_err().to_string();
        assert!(err.contains("model.json: line 3"), "{err}");
        // Unknown activation.
        std::fs::write(&path, m.to_json().replace("softplus", "swish")).unwrap();
        assert!(Mlp::load(&path).unwrap_err().to_string().contains("swish"));
        assert!(Mlp::load(&dir.join("missing.json"))
            .unwrap_err()
            .to_string()
            .contains("missing.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fit_checks_explain_mismatches() {
        let m = Mlp::xavier(&[3, 8, 2], Activation::Tanh, true, 1).unwrap();
        assert!(m.check_fits(2, true).is_ok());
        let err = m.check_fits(2, false).unwrap_err().to_string();
        assert!(
            err.contains("model takes 3 inputs (2 states + time)")
                && err.contains("problem has 2 states without time"),
            "{err}"
        );
        assert!(Mlp::xavier(&[2], Activation::Tanh, false, 0).is_err());
        assert!(Mlp::xavier(&[1, 4, 1], Activation::Tanh, true, 0).is_err());
    }
}
