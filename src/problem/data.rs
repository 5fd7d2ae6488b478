//! Data sets: generated from a built-in system with seeded noise, or read from CSV.

use super::ProblemError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Whether an observation is used for training or held out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Training window.
    Train,
    /// Test window.
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }
}

/// Observations `y(t_k)` with their split, and the noise-free values when known.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Observation times, increasing.
    pub t: Vec<f64>,
    /// One state vector per time.
    pub y: Vec<Vec<f64>>,
    /// The noise-free states, for generated data.
    pub clean: Option<Vec<Vec<f64>>>,
    /// Train or test, per time.
    pub split: Vec<Split>,
}

impl Dataset {
    /// State dimension.
    pub fn dim(&self) -> usize {
        self.y.first().map_or(0, Vec::len)
    }

    /// Indices of the observations of one split.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.t.len())
            .filter(|&k| self.split[k] == split)
            .collect()
    }
}

/// Standard normal draws by Box–Muller from ChaCha8 (pinned: same seed, same numbers).
pub fn normal_draws(seed: u64, n: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        out.push(r * a.cos());
        out.push(r * a.sin());
    }
    out.truncate(n);
    out
}

/// The file's name (for messages) and text.
fn read_text(path: &Path) -> Result<(String, String), ProblemError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ProblemError::Io {
        path: file.clone(),
        message: e.to_string(),
    })?;
    Ok((file, text))
}

/// A bad line of a data file.
fn data_error(file: &str, line: usize, message: String) -> ProblemError {
    ProblemError::Data {
        path: file.to_string(),
        line,
        message,
    }
}

/// Appends a time that must be larger than the previous one.
fn push_time(t: &mut Vec<f64>, time: f64) -> Result<(), String> {
    if let Some(&last) = t.last() {
        if time <= last {
            return Err(format!("time {time} does not increase (previous {last})"));
        }
    }
    t.push(time);
    Ok(())
}

/// Reads `t, y1, …, yd` rows. A header line is allowed (first line with a non-numeric
/// field); when its last column is `split` (colloc's own `data.csv`), that column is ignored.
/// `#` starts a comment line. Errors name the file and line.
pub fn read_csv(path: &Path) -> Result<(Vec<f64>, Vec<Vec<f64>>), ProblemError> {
    let (file, text) = read_text(path)?;
    let err = |line: usize, message: String| data_error(&file, line, message);
    let mut t = Vec::new();
    let mut y: Vec<Vec<f64>> = Vec::new();
    let mut width = None;
    let mut split_column = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let s = raw.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let mut fields: Vec<&str> = s.split(',').map(str::trim).collect();
        if split_column {
            fields.pop();
        }
        let parsed: Result<Vec<f64>, _> = fields.iter().map(|f| f.parse::<f64>()).collect();
        let values = match parsed {
            Ok(v) => v,
            Err(_) if t.is_empty() && width.is_none() => {
                split_column = fields.len() > 2 && fields.last() == Some(&"split");
                width = Some(fields.len() - usize::from(split_column));
                continue; // header
            }
            Err(_) => {
                let bad = fields
                    .iter()
                    .find(|f| f.parse::<f64>().is_err())
                    .copied()
                    .unwrap_or("");
                let hint = if bad.contains(|c: char| c == ';' || c.is_whitespace()) {
                    " (fields are separated by commas)"
                } else {
                    ""
                };
                return Err(err(line, format!("`{bad}` is not a number{hint}")));
            }
        };
        if values.len() < 2 {
            return Err(err(
                line,
                format!(
                    "need a time and at least one state, found {} field(s)",
                    values.len()
                ),
            ));
        }
        match width {
            Some(w) if w != values.len() => {
                return Err(err(
                    line,
                    format!("{} fields, but earlier rows have {w}", values.len()),
                ))
            }
            None => width = Some(values.len()),
            _ => {}
        }
        if let Some(j) = values.iter().position(|v| !v.is_finite()) {
            return Err(err(
                line,
                format!(
                    "field {} is {} (NaN or infinite values are not allowed)",
                    j + 1,
                    values[j]
                ),
            ));
        }
        push_time(&mut t, values[0]).map_err(|m| err(line, m))?;
        y.push(values[1..].to_vec());
    }
    if t.is_empty() {
        return Err(err(
            text.lines().count().max(1),
            "no data rows (expected `t, y1, …, yd` rows of numbers)".into(),
        ));
    }
    Ok((t, y))
}

/// Reads one trajectory of a double-pendulum measurement file in Schmidt & Lipson's format
/// (comment lines start with `%`; rows of whitespace-separated numbers: trajectory id, time,
/// θ1, θ2, ω1, ω2, then further columns that are ignored). Returns times shifted to start at
/// 0 and the states (θ1, θ2, ω1, ω2). Errors name the file and line.
pub fn read_schmidt_lipson(
    path: &Path,
    trajectory: u32,
) -> Result<(Vec<f64>, Vec<Vec<f64>>), ProblemError> {
    let (file, text) = read_text(path)?;
    let err = |line: usize, message: String| data_error(&file, line, message);
    let (mut t, mut y) = (Vec::new(), Vec::new());
    let mut ids = std::collections::BTreeSet::new();
    let mut last_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        last_line = line;
        let s = raw.trim();
        if s.is_empty() || s.starts_with('%') {
            continue;
        }
        let fields: Vec<&str> = s.split_whitespace().collect();
        if fields.len() < 6 {
            return Err(err(
                line,
                format!(
                    "need at least 6 columns (trajectory, t, θ1, θ2, ω1, ω2), found {}",
                    fields.len()
                ),
            ));
        }
        let mut v = [0.0; 6];
        for (j, f) in fields[..6].iter().enumerate() {
            v[j] = f
                .parse::<f64>()
                .map_err(|_| err(line, format!("column {}: `{f}` is not a number", j + 1)))?;
            if !v[j].is_finite() {
                return Err(err(
                    line,
                    format!(
                        "column {}: {} (NaN or infinite values are not allowed)",
                        j + 1,
                        v[j]
                    ),
                ));
            }
        }
        if v[0] < 0.0 || v[0].fract() != 0.0 {
            return Err(err(
                line,
                format!("trajectory id `{}` is not a whole number", fields[0]),
            ));
        }
        let id = v[0] as u32;
        ids.insert(id);
        if id != trajectory {
            continue;
        }
        push_time(&mut t, v[1]).map_err(|m| err(line, m))?;
        y.push(v[2..6].to_vec());
    }
    if t.len() < 2 {
        let found: Vec<String> = ids.iter().map(u32::to_string).collect();
        return Err(err(
            last_line.max(1),
            format!(
                "trajectory {trajectory} has {} rows (trajectories in the file: {})",
                t.len(),
                if found.is_empty() {
                    "none".to_string()
                } else {
                    found.join(", ")
                }
            ),
        ));
    }
    let start = t[0];
    t.iter_mut().for_each(|v| *v -= start);
    Ok((t, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_are_standard_and_pinned() {
        let z = normal_draws(0, 20_000);
        let mean = z.iter().sum::<f64>() / z.len() as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / z.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.03,
            "mean {mean}, var {var}"
        );
        assert_eq!(normal_draws(0, 5), normal_draws(0, 5));
        assert_eq!(&normal_draws(0, 5)[..], &normal_draws(0, 6)[..5]);
    }

    #[test]
    fn a_split_column_of_colloc_data_is_ignored_and_only_then() {
        let dir = std::env::temp_dir().join(format!("colloc-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let with_split = dir.join("data.csv");
        std::fs::write(&with_split, "t,y1,y2,split\n0,1,2,train\n1,3,4,test\n").unwrap();
        let (t, y) = read_csv(&with_split).unwrap();
        assert_eq!(t, vec![0.0, 1.0]);
        assert_eq!(y, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        // Another label column is still an error naming the line.
        let other = dir.join("other.csv");
        std::fs::write(&other, "t,y1,y2,label\n0,1,2,train\n").unwrap();
        let e = read_csv(&other).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("`train` is not a number"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
