//! Training methods. [`collocation`]: the simultaneous method — states at the collocation
//! points and network parameters optimized together by IPOPT.

pub mod collocation;
pub mod metrics;
pub mod prefit;
pub mod smoothing;
