//! Which namespaces registry-rewriter never acts in. The API server applies
//! this before any request reaches us (the webhook configuration's and the
//! policies' namespace selectors), and sync-secrets copies nothing there.

/// `"true"` on a namespace leaves everything in it untouched.
pub const IGNORE_NAMESPACE_LABEL: &str = "registry-rewriter.k8s-lab.dev/ignore";
/// Namespaces never touched: the control plane's, and the webhook's own.
pub const EXCLUDED_NAMESPACES: &[&str] = &["kube-system", "kube-node-lease", "registry-rewriter"];
