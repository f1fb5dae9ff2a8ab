//! The shared kernel: what every service's domain and the shared plumbing agree on, so that none
//! of them defines it again. No AWS, no I/O.

pub mod rfc3339_millis;
