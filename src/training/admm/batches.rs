//! The batches: the problem's training data split into windows (each its own collocation
//! grid and initial state), plus further trajectories.

use super::AdmmSettings;
use crate::collocation::Nodes;
use crate::problem::{Dataset, Problem, Split};
use crate::training::collocation::TrainError;
use crate::training::coordinates::standardization;

/// One batch: the problem restricted to a window.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The window.
    pub window: [f64; 2],
    /// The sub-problem (its data, collocation grid and window).
    pub problem: Problem,
}

/// The problem ADMM works on: the problem itself, or in standardized coordinates
/// ([`Problem::collocation_normalize`]: `[solver] normalize`, else `[model] normalize`) the
/// problem restated in the standardized coordinates of its training data (batch windows
/// mapped).
pub(super) fn working_problem(problem: &Problem) -> Result<Problem, TrainError> {
    if !problem.collocation_normalize() {
        return Ok(problem.clone());
    }
    problem
        .in_coordinates(&standardization(problem))
        .map_err(|e| TrainError::Unsupported(e.to_string()))
}

/// Splits the problem's training data into the batches of `settings`, then adds the batches of
/// each further trajectory (the problem's `trajectories` and `settings.trajectories`, loaded
/// relative to the problem's file): its own `[admm] windows`, or one batch over its training
/// window.
/// With `[model] normalize = true` every batch (further trajectories too) is stated in the
/// standardized coordinates of the problem's own training data; the batch windows stay in the
/// data's units.
pub fn make_batches(problem: &Problem, settings: &AdmmSettings) -> Result<Vec<Batch>, TrainError> {
    let working = working_problem(problem)?;
    let coordinates = working.coordinates.clone();
    let to_working = |w: &[f64; 2]| match &coordinates {
        Some(n) => [n.time_to_normalized(w[0]), n.time_to_normalized(w[1])],
        None => *w,
    };
    let windows: Vec<[f64; 2]> = settings.windows.iter().map(to_working).collect();
    let mut batches = window_batches(&working, &windows, settings.points, "")?;
    for (j, other) in further_trajectories(problem, settings)?
        .into_iter()
        .enumerate()
    {
        // The consensus network works in one set of coordinates: the main problem's.
        let other = match &coordinates {
            Some(n) => other.in_coordinates(n)?,
            None => other,
        };
        let (windows, points) = match &other.admm {
            Some(o) => (o.windows.clone(), o.points),
            None => (vec![[other.t0, other.t1]], None),
        };
        batches.extend(window_batches(
            &other,
            &windows,
            points,
            &format!("-trajectory{}", j + 1),
        )?);
    }
    Ok(batches)
}

/// The further trajectories of an ADMM run: the problem's `trajectories`, then its
/// `[admm] trajectories` (the same file in both is refused).
fn further_trajectories(
    problem: &Problem,
    settings: &AdmmSettings,
) -> Result<Vec<Problem>, TrainError> {
    let folder = problem.path.parent().unwrap_or(std::path::Path::new("."));
    if let Some(file) = settings.trajectories.iter().find(|f| {
        problem
            .trajectories
            .iter()
            .any(|g| folder.join(g) == folder.join(f))
    }) {
        return Err(TrainError::Unsupported(format!(
            "{}: {} is listed in `trajectories` and in `admm.trajectories`; list it once",
            problem.path.display(),
            file.display()
        )));
    }
    let mut all = problem.load_trajectories(&problem.trajectories, "trajectories")?;
    all.extend(problem.load_trajectories(&settings.trajectories, "admm.trajectories")?);
    Ok(all)
}

/// The batches of one trajectory: its training data restricted to each window.
fn window_batches(
    problem: &Problem,
    windows: &[[f64; 2]],
    points: Option<usize>,
    label: &str,
) -> Result<Vec<Batch>, TrainError> {
    let train = problem.data.indices(Split::Train);
    let span = problem.t1 - problem.t0;
    windows
        .iter()
        .enumerate()
        .map(|(i, &[a, b])| {
            let rows: Vec<usize> = train
                .iter()
                .copied()
                .filter(|&k| problem.data.t[k] >= a && problem.data.t[k] <= b)
                .collect();
            if rows.len() < 3 {
                return Err(TrainError::Unsupported(format!(
                    "ADMM batch {i} {:?} of {} holds {} training observations (need at least 3)",
                    [a, b],
                    problem.path.display(),
                    rows.len()
                )));
            }
            let mut p = problem.clone();
            p.name = format!("{}{label}-batch{i}", problem.name);
            p.data = Dataset {
                t: rows.iter().map(|&k| problem.data.t[k]).collect(),
                y: rows.iter().map(|&k| problem.data.y[k].clone()).collect(),
                clean: problem
                    .data
                    .clean
                    .as_ref()
                    .map(|c| rows.iter().map(|&k| c[k].clone()).collect()),
                split: vec![Split::Train; rows.len()],
            };
            p.t0 = a;
            p.t1 = b;
            p.nodes = batch_nodes(&problem.nodes, points, [a, b], span)?;
            let window = match &problem.coordinates {
                Some(n) => [n.time_from_normalized(a), n.time_from_normalized(b)],
                None => [a, b],
            };
            Ok(Batch { window, problem: p })
        })
        .collect()
}

/// A batch's collocation grid on `[a, b]`: global collocation with `points` nodes (default:
/// the problem's share for the window's length); finite elements with the problem's points
/// per element and its share of elements (at least one).
fn batch_nodes(
    nodes: &Nodes,
    points: Option<usize>,
    [a, b]: [f64; 2],
    span: f64,
) -> Result<Nodes, TrainError> {
    let share = (b - a) / span;
    match nodes.elements.first() {
        None => {
            let points =
                points.unwrap_or_else(|| ((nodes.len() as f64 * share).round() as usize).max(3));
            Ok(Nodes::new(nodes.kind, points, a, b)?)
        }
        Some(_) if points.is_some() => Err(TrainError::Unsupported(
            "admm.points sets the points of global collocation; with finite elements each batch gets the problem's points per element and its share of the elements".into(),
        )),
        Some((_, element)) => {
            let k = ((nodes.elements.len() as f64 * share).round() as usize).max(1);
            Ok(Nodes::finite_elements(nodes.kind, k, element.len(), a, b)?)
        }
    }
}
