//! A problem restated in the standardized coordinates of a [`Normalization`]: the network of a
//! normalized model is trained on this problem exactly as any other network, and the result
//! is mapped back (see [`crate::training::coordinates`]).

use super::{Problem, ProblemError};
use colloc_models::{Normalization, Structure};

impl Problem {
    /// The same problem in the coordinates `z = (y − μ)/σ`, `τ = (t − t₀)/T` of `n`: data
    /// (noise-free states too), training window, collocation nodes, time-basis window and a
    /// gray box's known matrix mapped, ADMM batch windows too (further trajectories are mapped when their files are
    /// loaded); the homotopy coupling `k` (a rate) multiplied by `T`. The result records `n` in
    /// [`Problem::coordinates`] and asks for no further normalization. Fails for state bounds
    /// (no counterpart in those coordinates) and for a problem already restated.
    pub fn in_coordinates(&self, n: &Normalization) -> Result<Problem, ProblemError> {
        let refuse = |field: &str, what: &str| ProblemError::Field {
            path: self.path.display().to_string(),
            field: field.to_string(),
            message: format!("{what} cannot be used with a normalized model"),
        };
        if self.state_bound.is_some() {
            return Err(refuse("bounds.states", "state bounds"));
        }
        if self.coordinates.is_some() {
            return Err(refuse(
                "model.normalize",
                "a problem already in standardized coordinates",
            ));
        }
        n.validate(self.data.dim())
            .map_err(|e| refuse("model", &e.to_string()))?;
        let mut p = self.clone();
        let time = |t: f64| n.time_to_normalized(t);
        let states = |ys: &[Vec<f64>]| -> Vec<Vec<f64>> {
            ys.iter().map(|y| n.state_to_normalized(y)).collect()
        };
        p.data.t = self.data.t.iter().map(|&t| time(t)).collect();
        p.data.y = states(&self.data.y);
        p.data.clean = self.data.clean.as_deref().map(states);
        p.t0 = time(self.t0);
        p.t1 = time(self.t1);
        p.nodes = self.nodes.rescaled(n.time_shift, n.time_scale);
        if let Structure::GrayBox { linear } = &mut p.model.structure {
            *linear = n.gray_box_matrix(linear);
        }
        if let Some(b) = &mut p.model.time_basis {
            b.t0 = time(b.t0);
            b.t1 = time(b.t1);
        }
        if let Some(a) = &mut p.admm {
            for w in &mut a.windows {
                *w = [time(w[0]), time(w[1])];
            }
        }
        p.coordinates = Some(n.clone());
        p.model.normalize = false;
        p.solver_normalize = None;
        p.model.time_scale = None;
        p.sequential.homotopy.coupling *= n.time_scale;
        Ok(p)
    }
}
