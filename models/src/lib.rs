//! Model families for colloc, generic over num-dual scalars.
#![deny(unsafe_code)]
#![warn(missing_docs)]
