//! Local tooling for the orders service: template.yaml is the single source of truth, and this crate
//! turns it into tables (and, later, queues and running functions) on the local emulators.

pub mod provision;
pub mod template;

pub use provision::{ProvisionError, create_tables, table_name};
pub use template::{PhysicalNames, Template, TemplateError};
