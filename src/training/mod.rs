//! Training methods. [`collocation`]: the simultaneous method — states at the collocation
//! points and network parameters optimized together by IPOPT. [`sequential`]: the baselines
//! that integrate the ODE and follow exact gradients (vanilla, homotopy, multiple shooting).
//! [`admm`]: consensus over collocation sub-problems, one per batch. [`sweep`]: hyper-parameter
//! selection for the sequential trainers.

pub mod admm;
pub mod collocation;
pub mod coordinates;
mod deep_network;
pub mod metrics;
pub mod prediction;
pub mod prefit;
pub mod sequential;
pub mod smoothing;
pub mod sweep;
