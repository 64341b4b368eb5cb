//! registry-rewriter: a Kubernetes mutating admission webhook that moves
//! image references and Kaniko builds from an in-cluster plain-HTTP
//! registry to the same registry's HTTPS endpoint.
//!
//! The request path runs one way: [`server`] (TLS, HTTP) hands the body to
//! [`admission`] (AdmissionReview v1), which calls the pure [`engine`].

pub mod admission;
pub mod certs;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod preview;
pub mod reference;
pub mod server;
