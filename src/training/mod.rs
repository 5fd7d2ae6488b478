//! Training methods. [`collocation`]: the simultaneous method — states at the collocation
//! points and network parameters optimized together by IPOPT. [`sequential`]: the baselines
//! that integrate the ODE and follow exact gradients (vanilla, homotopy, multiple shooting).

pub mod collocation;
pub mod metrics;
pub mod prefit;
pub mod sequential;
pub mod smoothing;
