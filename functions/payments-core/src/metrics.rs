//! The payments service's business metrics.

/// Authorizations held longer than `STRANDED_AFTER_HOURS`, neither captured nor voided (alarmed).
pub const AUTHORIZATIONS_STRANDED: &str = "AuthorizationsStranded";
