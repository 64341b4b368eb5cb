//! registry-rewriter: a Kubernetes mutating admission webhook that moves
//! image references and Kaniko builds from an in-cluster plain-HTTP
//! registry to the same registry's HTTPS endpoint.
//!
//! The request path runs one way: [`server`] (TLS, HTTP) hands the body to
//! [`admission`] (AdmissionReview v1), which calls the pure [`engine`].
//!
//! The engine on its own: raw object JSON in, a JSON Patch and one
//! explanation per change out.
//!
//! ```
//! use registry_rewriter::config::Config;
//! use registry_rewriter::engine::{mutate, Scope, Workload};
//! use serde_json::value::RawValue;
//!
//! let pod = RawValue::from_string(
//!     r#"{"metadata":{"name":"web"},"spec":{"containers":[
//!         {"name":"web","image":"docker-registry.registry.svc:5000/team/web:v1"}]}}"#.to_owned(),
//! )?;
//! let pods = Workload::find("", "Pod").expect("Pods are in the table");
//! let mutation = mutate(&pod, pods, Scope::Create, Config::default().rules())?;
//!
//! let mut admitted: serde_json::Value = serde_json::from_str(pod.get())?;
//! json_patch::patch(&mut admitted, &mutation.patch)?;
//! assert_eq!(admitted["spec"]["containers"][0]["image"], "registry.k8s-lab.dev/team/web:v1");
//! assert_eq!(admitted["spec"]["imagePullSecrets"][0]["name"], "registry-credentials");
//! assert_eq!(
//!     mutation.changes[0].message,
//!     "containers[web].image: docker-registry.registry.svc:5000/team/web:v1 -> registry.k8s-lab.dev/team/web:v1"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod admin;
pub mod admission;
pub mod certs;
pub mod cli;
pub mod config;
pub mod duration;
pub mod engine;
pub mod errors;
mod json_text;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod preview;
pub mod reference;
pub mod scope;
pub mod server;
pub mod sync_secrets;
