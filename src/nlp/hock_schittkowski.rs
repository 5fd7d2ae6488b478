//! Standard test problems from Hock & Schittkowski, *Test Examples for Nonlinear Programming
//! Codes* (1981), written with the modeling layer, with their published optima.
//!
//! Together they use every term kind: elements (several per constraint row), linear
//! constraints from a sparse matrix and from triplets, linear objective, constants,
//! least squares and L2 terms.

use super::{
    ConSpec, Element, ElementGroup, L2Regularization, LeastSquares, Model, ModelError, Nlp, Scalar,
    Target, VarSpec,
};

/// A test problem with its published solution.
#[derive(Debug)]
pub struct ReferenceProblem {
    /// Name, e.g. `"hs071"`.
    pub name: &'static str,
    /// The compiled NLP, starting at the published starting point.
    pub nlp: Nlp,
    /// Published optimal point.
    pub x_opt: Vec<f64>,
    /// Published optimal objective.
    pub f_opt: f64,
}

/// All problems of this module.
pub fn all() -> Result<Vec<ReferenceProblem>, ModelError> {
    Ok(vec![
        hs006()?,
        hs035()?,
        hs038()?,
        hs040()?,
        hs071()?,
        hs076()?,
    ])
}

/// `x^p` for one input.
struct Power {
    p: i32,
    c: f64,
}
impl Element for Power {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0].powi(self.p) * self.c;
    }
}

/// HS006: `min (1 − x₁)²  s.t.  10(x₂ − x₁²) = 0`; f* = 0 at (1, 1). Least-squares objective.
pub fn hs006() -> Result<ReferenceProblem, ModelError> {
    let mut m = Model::new();
    let x = m.add_variables(VarSpec::new("x", &[2]).start_each(vec![-1.2, 1.0]))?;
    let c = m.add_constraints(ConSpec::equal_zero("c", 1))?;
    m.add_least_squares(LeastSquares::on_variables(
        "fit",
        &[x.index(0)],
        vec![1.0],
        1.0,
    ));
    m.add_linear_triplets("c", [(c.row(0), x.index(1), 10.0)]);
    let mut g = ElementGroup::new("square", 1, 1);
    g.push(
        Power { p: 2, c: -10.0 },
        &[x.index(0)],
        &[Target::Constraint(c.row(0))],
    )?;
    m.add_elements(g)?;
    Ok(ReferenceProblem {
        name: "hs006",
        nlp: m.build()?,
        x_opt: vec![1.0, 1.0],
        f_opt: 0.0,
    })
}

/// `2 x₀ (x₁ + x₂)`.
struct Cross35;
impl Element for Cross35 {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0] * (x[1] + x[2]) * 2.0;
    }
}

/// HS035 (Beale): `min 9 − 8x₁ − 6x₂ − 4x₃ + 2x₁² + 2x₂² + x₃² + 2x₁x₂ + 2x₁x₃`
/// s.t. `x₁ + x₂ + 2x₃ ≤ 3`, `x ≥ 0`; f* = 1/9 at (4/3, 7/9, 4/9).
pub fn hs035() -> Result<ReferenceProblem, ModelError> {
    let mut m = Model::new();
    let x = m.add_variables(
        VarSpec::new("x", &[3])
            .bounds(0.0, f64::INFINITY)
            .start(0.5),
    )?;
    let c = m.add_constraints(ConSpec::new("c", 1, f64::NEG_INFINITY, 3.0))?;
    let mut a = sprs::TriMat::new((1, 3));
    for (j, v) in [1.0, 1.0, 2.0].into_iter().enumerate() {
        a.add_triplet(0, x.index(j), v);
    }
    m.add_linear("c", &c, &a.to_csr())?;
    m.add_objective_constant(9.0);
    m.add_linear_objective(
        "linear",
        [(x.index(0), -8.0), (x.index(1), -6.0), (x.index(2), -4.0)],
    );
    m.add_l2(L2Regularization::new("x12", [x.index(0), x.index(1)], 2.0));
    m.add_l2(L2Regularization::new("x3", [x.index(2)], 1.0));
    let mut g = ElementGroup::new("cross", 3, 1);
    g.push(
        Cross35,
        &[x.index(0), x.index(1), x.index(2)],
        &[Target::Objective],
    )?;
    m.add_elements(g)?;
    Ok(ReferenceProblem {
        name: "hs035",
        nlp: m.build()?,
        x_opt: vec![4.0 / 3.0, 7.0 / 9.0, 4.0 / 9.0],
        f_opt: 1.0 / 9.0,
    })
}

/// `a (y − x²)² + (1 − x)²`.
struct Rosenbrock {
    a: f64,
}
impl Element for Rosenbrock {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        let r = x[1] - x[0] * x[0];
        let s = -x[0] + 1.0;
        out[0] = r * r * self.a + s * s;
    }
}

/// `10.1((x₂−1)² + (x₄−1)²) + 19.8(x₂−1)(x₄−1)`.
struct Coupling38;
impl Element for Coupling38 {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        let (a, b) = (x[0] - 1.0, x[1] - 1.0);
        out[0] = (a * a + b * b) * 10.1 + a * b * 19.8;
    }
}

/// HS038 (Colville): `100(x₂−x₁²)² + (1−x₁)² + 90(x₄−x₃²)² + (1−x₃)² + 10.1((x₂−1)² + (x₄−1)²)
/// + 19.8(x₂−1)(x₄−1)`, `−10 ≤ x ≤ 10`; f* = 0 at (1, 1, 1, 1).
pub fn hs038() -> Result<ReferenceProblem, ModelError> {
    let mut m = Model::new();
    let x = m.add_variables(
        VarSpec::new("x", &[4])
            .bounds(-10.0, 10.0)
            .start_each(vec![-3.0, -1.0, -3.0, -1.0]),
    )?;
    let mut r = ElementGroup::new("rosenbrock", 2, 1);
    r.push(
        Rosenbrock { a: 100.0 },
        &[x.index(0), x.index(1)],
        &[Target::Objective],
    )?;
    r.push(
        Rosenbrock { a: 90.0 },
        &[x.index(2), x.index(3)],
        &[Target::Objective],
    )?;
    m.add_elements(r)?;
    let mut c = ElementGroup::new("coupling", 2, 1);
    c.push(Coupling38, &[x.index(1), x.index(3)], &[Target::Objective])?;
    m.add_elements(c)?;
    Ok(ReferenceProblem {
        name: "hs038",
        nlp: m.build()?,
        x_opt: vec![1.0; 4],
        f_opt: 0.0,
    })
}

/// Product of all inputs times `c`.
struct Product {
    c: f64,
}
impl Element for Product {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x.iter().fold(S::from(self.c), |p, &xi| p * xi);
    }
}

/// `x₀² x₁`.
struct SquareTimes;
impl Element for SquareTimes {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0] * x[0] * x[1];
    }
}

/// HS040: `min −x₁x₂x₃x₄` s.t. `x₁³ + x₂² = 1`, `x₁²x₄ − x₃ = 0`, `x₄² − x₂ = 0`;
/// f* = −0.25 at (2^(−1/3), 2^(−1/2), 2^(−11/12), 2^(−1/4)).
pub fn hs040() -> Result<ReferenceProblem, ModelError> {
    let mut m = Model::new();
    let x = m.add_variables(VarSpec::new("x", &[4]).start(0.8))?;
    let c = m.add_constraints(ConSpec::with_bounds(
        "c",
        vec![1.0, 0.0, 0.0],
        vec![1.0, 0.0, 0.0],
    ))?;
    let mut obj = ElementGroup::new("product", 4, 1);
    obj.push(
        Product { c: -1.0 },
        &[x.index(0), x.index(1), x.index(2), x.index(3)],
        &[Target::Objective],
    )?;
    m.add_elements(obj)?;
    let mut pw = ElementGroup::new("powers", 1, 1);
    pw.push(
        Power { p: 3, c: 1.0 },
        &[x.index(0)],
        &[Target::Constraint(c.row(0))],
    )?;
    pw.push(
        Power { p: 2, c: 1.0 },
        &[x.index(1)],
        &[Target::Constraint(c.row(0))],
    )?;
    pw.push(
        Power { p: 2, c: 1.0 },
        &[x.index(3)],
        &[Target::Constraint(c.row(2))],
    )?;
    m.add_elements(pw)?;
    let mut st = ElementGroup::new("square_times", 2, 1);
    st.push(
        SquareTimes,
        &[x.index(0), x.index(3)],
        &[Target::Constraint(c.row(1))],
    )?;
    m.add_elements(st)?;
    m.add_linear_triplets(
        "linear",
        [(c.row(1), x.index(2), -1.0), (c.row(2), x.index(1), -1.0)],
    );
    let x_opt = vec![
        2f64.powf(-1.0 / 3.0),
        2f64.powf(-0.5),
        2f64.powf(-11.0 / 12.0),
        2f64.powf(-0.25),
    ];
    Ok(ReferenceProblem {
        name: "hs040",
        nlp: m.build()?,
        x_opt,
        f_opt: -0.25,
    })
}

/// `x₀ x₃ (x₀ + x₁ + x₂) + x₂`.
struct Objective71;
impl Element for Objective71 {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2];
    }
}

/// HS071 (the Ipopt documentation's example): `min x₁x₄(x₁ + x₂ + x₃) + x₃`
/// s.t. `x₁x₂x₃x₄ ≥ 25`, `x₁² + x₂² + x₃² + x₄² = 40`, `1 ≤ x ≤ 5`, start (1, 5, 5, 1);
/// f* = 17.0140173 at (1, 4.74299963, 3.82114998, 1.37940829).
pub fn hs071() -> Result<ReferenceProblem, ModelError> {
    let mut m = Model::new();
    let x = m.add_variables(
        VarSpec::new("x", &[4])
            .bounds(1.0, 5.0)
            .start_each(vec![1.0, 5.0, 5.0, 1.0]),
    )?;
    let c = m.add_constraints(ConSpec::with_bounds(
        "c",
        vec![25.0, 40.0],
        vec![f64::INFINITY, 40.0],
    ))?;
    let all = [x.index(0), x.index(1), x.index(2), x.index(3)];
    let mut obj = ElementGroup::new("objective", 4, 1);
    obj.push(Objective71, &all, &[Target::Objective])?;
    m.add_elements(obj)?;
    let mut prod = ElementGroup::new("product", 4, 1);
    prod.push(Product { c: 1.0 }, &all, &[Target::Constraint(c.row(0))])?;
    m.add_elements(prod)?;
    let mut sq = ElementGroup::new("squares", 1, 1);
    for i in all {
        sq.push(
            Power { p: 2, c: 1.0 },
            &[i],
            &[Target::Constraint(c.row(1))],
        )?;
    }
    m.add_elements(sq)?;
    let x_opt = vec![1.0, 4.742_999_63, 3.821_149_98, 1.379_408_29];
    Ok(ReferenceProblem {
        name: "hs071",
        nlp: m.build()?,
        x_opt,
        f_opt: 17.014_017_3,
    })
}

/// `x₀² + 0.5x₁² + x₂² + 0.5x₃² − x₀x₂ + x₂x₃`.
struct Quadratic76;
impl Element for Quadratic76 {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0] * x[0] + x[1] * x[1] * 0.5 + x[2] * x[2] + x[3] * x[3] * 0.5 - x[0] * x[2]
            + x[2] * x[3];
    }
}

/// HS076: `min x₁² + 0.5x₂² + x₃² + 0.5x₄² − x₁x₃ + x₃x₄ − x₁ − 3x₂ + x₃ − x₄`
/// s.t. `x₁ + 2x₂ + x₃ + x₄ ≤ 5`, `3x₁ + x₂ + 2x₃ − x₄ ≤ 4`, `x₂ + 4x₃ ≥ 1.5`, `x ≥ 0`;
/// f* = −103/22 ≈ −4.6818182 at (3/11, 23/11, 0, 6/11).
pub fn hs076() -> Result<ReferenceProblem, ModelError> {
    let mut m = Model::new();
    let x = m.add_variables(
        VarSpec::new("x", &[4])
            .bounds(0.0, f64::INFINITY)
            .start(0.5),
    )?;
    let inf = f64::INFINITY;
    let c = m.add_constraints(ConSpec::with_bounds(
        "c",
        vec![-inf, -inf, 1.5],
        vec![5.0, 4.0, inf],
    ))?;
    let rows = [
        [1.0, 2.0, 1.0, 1.0],
        [3.0, 1.0, 2.0, -1.0],
        [0.0, 1.0, 4.0, 0.0],
    ];
    let mut a = sprs::TriMat::new((3, 4));
    for (i, row) in rows.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if v != 0.0 {
                a.add_triplet(i, x.index(j), v);
            }
        }
    }
    m.add_linear("c", &c, &a.to_csr())?;
    m.add_linear_objective(
        "linear",
        [
            (x.index(0), -1.0),
            (x.index(1), -3.0),
            (x.index(2), 1.0),
            (x.index(3), -1.0),
        ],
    );
    let mut q = ElementGroup::new("quadratic", 4, 1);
    q.push(
        Quadratic76,
        &[x.index(0), x.index(1), x.index(2), x.index(3)],
        &[Target::Objective],
    )?;
    m.add_elements(q)?;
    let x_opt = vec![3.0 / 11.0, 23.0 / 11.0, 0.0, 6.0 / 11.0];
    Ok(ReferenceProblem {
        name: "hs076",
        nlp: m.build()?,
        x_opt,
        f_opt: -103.0 / 22.0,
    })
}
