//! A dependency-free SVG plot: one panel per state with the observations (train and test),
//! the fitted collocation states, the simulated trajectory and the train/test boundary.

use crate::problem::{Problem, Split};
use crate::training::collocation::CollocationRun;
use std::fmt::Write as _;

const W: f64 = 900.0;
const PANEL_H: f64 = 240.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;

/// The plot of a collocation run as SVG text.
pub fn fit_plot(problem: &Problem, run: &CollocationRun) -> String {
    trajectory_plot(
        problem,
        Some((&run.nodes.times, &run.states)),
        &run.evaluation.prediction,
        "orange: collocation states, blue: simulated learned ODE",
    )
}

/// Observations (train and test), optional fitted states `(times, states)`, the simulated
/// trajectory `prediction` (one state per data time) and the train/test boundary, as SVG.
pub fn trajectory_plot(
    problem: &Problem,
    fitted: Option<(&[f64], &[Vec<f64>])>,
    prediction: &[Vec<f64>],
    legend: &str,
) -> String {
    let data = &problem.data;
    let test: Vec<bool> = data.split.iter().map(|s| *s != Split::Train).collect();
    panels(&Panels {
        title: &problem.name,
        legend,
        t_range: (
            data.t.first().copied().unwrap_or(0.0).min(problem.t0),
            data.t.last().copied().unwrap_or(1.0).max(problem.t1),
        ),
        observations: Some((&data.t, &data.y, &test)),
        boundary: data.split.contains(&Split::Test).then_some(problem.t1),
        fitted,
        simulated: (&data.t, prediction),
    })
}

/// A predicted trajectory `(times, states)` and, if given, the measurements at the same
/// times, as SVG (`colloc predict --svg`).
pub fn prediction_plot(
    title: &str,
    times: &[f64],
    prediction: &[Vec<f64>],
    observed: Option<&[Vec<f64>]>,
) -> String {
    let train = vec![false; observed.map_or(0, <[Vec<f64>]>::len)];
    panels(&Panels {
        title,
        legend: "blue: learned ODE",
        t_range: (
            times.first().copied().unwrap_or(0.0),
            times.last().copied().unwrap_or(1.0),
        ),
        observations: observed.map(|o| (times, o, train.as_slice())),
        boundary: None,
        fitted: None,
        simulated: (times, prediction),
    })
}

/// Observations: times, states, and whether each is a test point.
type Observations<'a> = (&'a [f64], &'a [Vec<f64>], &'a [bool]);

/// What [`panels`] draws: one panel per state.
struct Panels<'a> {
    title: &'a str,
    legend: &'a str,
    /// The time axis.
    t_range: (f64, f64),
    /// Observations `(times, states, is_test)`, dots (grey when test).
    observations: Option<Observations<'a>>,
    /// A train/test boundary, a dashed line.
    boundary: Option<f64>,
    /// Fitted states `(times, states)`, an orange line.
    fitted: Option<(&'a [f64], &'a [Vec<f64>])>,
    /// The simulated trajectory `(times, states)`, a blue line.
    simulated: (&'a [f64], &'a [Vec<f64>]),
}

fn panels(p: &Panels<'_>) -> String {
    let (sim_t, prediction) = p.simulated;
    let d = p
        .observations
        .and_then(|(_, o, _)| o.first())
        .or(prediction.first())
        .map_or(0, Vec::len);
    let (t_min, t_max) = p.t_range;
    let height = TOP + d as f64 * (PANEL_H + 30.0) + 20.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="14">{} — dots: observations (grey: test), {}</text>"#,
        escape(p.title),
        escape(p.legend)
    );
    let observed: &[Vec<f64>] = p.observations.map_or(&[], |(_, o, _)| o);
    for i in 0..d {
        let y0 = TOP + i as f64 * (PANEL_H + 30.0);
        let values = observed
            .iter()
            .map(|y| y[i])
            .chain(prediction.iter().map(|y| y[i]))
            .chain(p.fitted.iter().flat_map(|(_, st)| st.iter().map(|y| y[i])))
            .filter(|v| v.is_finite());
        let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        if !(lo.is_finite() && hi.is_finite()) || hi - lo < 1e-12 {
            lo = -1.0;
            hi = 1.0;
        }
        // Keep a runaway simulation from squashing the panel: clip to 3× the data's range.
        if !observed.is_empty() {
            let (dlo, dhi) = observed
                .iter()
                .map(|y| y[i])
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
            let pad = dhi - dlo;
            lo = lo.max(dlo - pad);
            hi = hi.min(dhi + pad);
        }
        let x = |t: f64| LEFT + (t - t_min) / (t_max - t_min) * (W - LEFT - RIGHT);
        let y = |v: f64| y0 + PANEL_H - (v.clamp(lo, hi) - lo) / (hi - lo) * PANEL_H;
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{y0}" width="{}" height="{PANEL_H}" fill="none" stroke="#888"/>"##,
            W - LEFT - RIGHT
        );
        let _ = writeln!(
            s,
            r#"<text x="8" y="{}">y{}</text>"#,
            y0 + PANEL_H / 2.0,
            i + 1
        );
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" text-anchor="start">{:.3}</text>"#,
            y0 + PANEL_H + 14.0,
            t_min
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{:.3}</text>"#,
            W - RIGHT,
            y0 + PANEL_H + 14.0,
            t_max
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{hi:.3}</text>"#,
            LEFT - 4.0,
            y0 + 10.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{lo:.3}</text>"#,
            LEFT - 4.0,
            y0 + PANEL_H
        );
        if let Some(tb) = p.boundary {
            let xb = x(tb);
            let _ = writeln!(
                s,
                r##"<line x1="{xb}" y1="{y0}" x2="{xb}" y2="{}" stroke="#c00" stroke-dasharray="4 3"/>"##,
                y0 + PANEL_H
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" fill="#c00">train | test</text>"##,
                xb + 4.0,
                y0 + 12.0
            );
        }
        if let Some((times, obs, test)) = p.observations {
            for ((t, o), is_test) in times.iter().zip(obs).zip(test) {
                let color = if *is_test { "#aaa" } else { "#222" };
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.2}" cy="{:.2}" r="1.8" fill="{color}"/>"#,
                    x(*t),
                    y(o[i])
                );
            }
        }
        if let Some((times, states)) = p.fitted {
            let fit: Vec<(f64, f64)> = times.iter().zip(states).map(|(&t, v)| (t, v[i])).collect();
            polyline(&mut s, &fit, &x, &y, "#e07000", 4.0);
        }
        let sim: Vec<(f64, f64)> = sim_t
            .iter()
            .zip(prediction)
            .map(|(&t, v)| (t, v[i]))
            .filter(|(_, v)| v.is_finite())
            .collect();
        polyline(&mut s, &sim, &x, &y, "#1060d0", 1.5);
    }
    s.push_str("</svg>\n");
    s
}

/// Learning curve: log10 of the loss and of the training MSE per epoch (and λ on a linear
/// axis in [0, 1] when it is not all zero), as SVG.
pub fn curve_plot(title: &str, curve: &[crate::sequential::EpochRecord]) -> String {
    let lambda: Vec<f64> = curve.iter().map(|c| c.lambda).collect();
    log_series_plot(
        &format!("{title} — blue: log10 loss, black: log10 train MSE, red: λ (0–1)"),
        "epoch",
        &[
            ("#1060d0", curve.iter().map(|c| c.loss).collect()),
            ("#222", curve.iter().map(|c| c.train_mse).collect()),
        ],
        lambda
            .iter()
            .any(|&l| l != 0.0)
            .then_some(("#c00", lambda.as_slice())),
    )
}

/// Series against their index on a log10 axis (non-positive and non-finite values are left
/// out), with an optional series in [0, 1] on a linear axis, as SVG.
pub fn log_series_plot(
    title: &str,
    x_label: &str,
    series: &[(&str, Vec<f64>)],
    unit_series: Option<(&str, &[f64])>,
) -> String {
    let h = PANEL_H * 1.5;
    let height = TOP + h + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="14">{}</text>"#,
        escape(title)
    );
    let logs: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, v)| {
            v.iter()
                .map(|&x| if x > 0.0 { x.log10() } else { f64::NAN })
                .collect()
        })
        .collect();
    let (mut lo, mut hi) = logs
        .iter()
        .flatten()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !(lo.is_finite() && hi.is_finite()) || hi - lo < 1e-9 {
        lo = -1.0;
        hi = 1.0;
    }
    let len = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let n = len.max(2) as f64;
    let x = |e: f64| LEFT + e / (n - 1.0) * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + h - (v.clamp(lo, hi) - lo) / (hi - lo) * h;
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{h}" fill="none" stroke="#888"/>"##,
        W - LEFT - RIGHT
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{hi:.2}</text>"#,
        LEFT - 4.0,
        TOP + 10.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{lo:.2}</text>"#,
        LEFT - 4.0,
        TOP + h
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{} {}</text>"#,
        W - RIGHT,
        TOP + h + 16.0,
        escape(x_label),
        len.saturating_sub(1)
    );
    for ((color, _), values) in series.iter().zip(&logs) {
        let pts: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(e, &v)| (e as f64, v))
            .collect();
        polyline(&mut s, &pts, &x, &y, color, 1.2);
    }
    if let Some((color, values)) = unit_series {
        let yl = |v: f64| TOP + h - v.clamp(0.0, 1.0) * h;
        let pts: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(e, &v)| (e as f64, v))
            .collect();
        polyline(&mut s, &pts, &x, &yl, color, 1.0);
    }
    s.push_str("</svg>\n");
    s
}

fn polyline(
    s: &mut String,
    pts: &[(f64, f64)],
    x: &dyn Fn(f64) -> f64,
    y: &dyn Fn(f64) -> f64,
    color: &str,
    width: f64,
) {
    if pts.is_empty() {
        return;
    }
    let points: Vec<String> = pts
        .iter()
        .map(|&(t, v)| format!("{:.2},{:.2}", x(t), y(v)))
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="{width}" stroke-opacity="0.8"/>"#,
        points.join(" ")
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
