//! Local tooling for the orders service: template.yaml is the single source of truth, and this crate
//! turns it into tables (and, later, queues and running functions) on the local emulators.

pub mod api;
pub mod chaos;
pub mod console;
pub mod cpu;
pub mod dev;
pub mod emf;
pub mod invocations;
pub mod journal;
pub mod jwt;
pub mod mapping;
pub mod provision;
pub mod queues;
pub mod reload;
pub mod rie;
pub mod secrets;
pub mod template;
pub mod topics;
pub mod web;

pub use provision::{ProvisionError, create_tables, table_name};
pub use queues::{Queues, create_queues};
pub use secrets::create_secrets;
pub use template::{PhysicalNames, Template, TemplateError, Trigger};
pub use topics::{Topics, create_topics};
