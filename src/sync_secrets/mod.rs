//! `registry-rewriter sync-secrets`: a controller that keeps a copy of the
//! pull secret in every namespace the webhook rewrites Pods in, so that
//! the `imagePullSecrets` entry it adds always names a Secret that exists.
//!
//! Built on kube-rs' runtime: a `Controller` over Namespaces, re-run for a
//! namespace when its copy changes and for all of them when the source
//! changes. Each reconcile reads the namespace's copy, decides with
//! [`plan::plan`] (pure) and writes only when the copy differs, by
//! server-side apply under one field manager. It is idempotent, so one
//! replica restarted by its Deployment is enough: no leader election.

pub mod plan;
pub mod selector;
mod standings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, Namespace, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::net::TcpListener;

use crate::admin;

pub use plan::Options;
use plan::{Plan, FIELD_MANAGER};
use standings::{Standing, Standings, SyncReport};

/// Why the controller could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("connecting to the Kubernetes API (in cluster, or KUBECONFIG)")]
    Client(#[source] kube::Error),
    #[error("binding the admin listener on {addr}")]
    AdminBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the watch on the source Secret ended before its first list")]
    SourceWatchEnded,
}

/// Why one reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing {namespace}/{name}")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub struct Settings {
    pub options: Options,
    pub admin_listen: SocketAddr,
    /// Every namespace is reconciled again after this long.
    pub resync: Duration,
    /// Namespaces reconciled at once.
    pub concurrency: u16,
}

struct Context {
    client: Client,
    options: Options,
    source: Store<Secret>,
    source_ref: ObjectRef<Secret>,
    standings: Arc<Standings>,
    resync: Duration,
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(settings: Settings) -> Result<(), SyncError> {
    let client = Client::try_default().await.map_err(SyncError::Client)?;
    let listener = TcpListener::bind(settings.admin_listen)
        .await
        .map_err(|source| SyncError::AdminBind {
            addr: settings.admin_listen,
            source,
        })?;
    let options = settings.options;
    let source_ref = ObjectRef::new(&options.source_name).within(&options.source_namespace);

    // The source, in a store of its own, watched by a task of its own; any
    // change to it re-runs every namespace. The controller starts once its
    // first list is in, so no reconcile waits on it (kube-runtime's
    // `Store::wait_until_ready` wakes only its last waiter).
    let (source, source_writer) = reflector::store();
    let (source_changed, source_changes) = mpsc::channel(1);
    let source_watch = tokio::spawn(watch_source(
        Api::namespaced(client.clone(), &options.source_namespace),
        options.source_name.clone(),
        source_writer,
        source_changed,
    ));
    let copies = Api::<Secret>::all(client.clone());
    let controller = Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        copies,
        watcher::Config::default().fields(&format!("metadata.name={}", options.target_name)),
        |secret| {
            secret
                .namespace()
                .map(|namespace| ObjectRef::new(&namespace))
        },
    )
    .reconcile_all_on(source_changes)
    .with_config(ControllerConfig::default().concurrency(settings.concurrency))
    .shutdown_on_signal();

    let standings = Arc::new(Standings::new());
    let report = Arc::new(SyncReport {
        standings: standings.clone(),
        namespaces: controller.store(),
        source: source.clone(),
        source_ref: source_ref.clone(),
    });
    let admin_server = admin::spawn(listener, report);
    tracing::info!(
        source = %options.source_ref(),
        copy = %options.target_name,
        admin = %settings.admin_listen,
        "sync-secrets started"
    );
    // The admin port serves meanwhile: live, and not ready.
    source
        .wait_until_ready()
        .await
        .map_err(|_| SyncError::SourceWatchEnded)?;

    let context = Arc::new(Context {
        client,
        options,
        source,
        source_ref,
        standings,
        resync: settings.resync,
    });
    controller
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller");
            }
        })
        .await;
    admin_server.stop().await;
    source_watch.abort();
    tracing::info!("sync-secrets stopped");
    Ok(())
}

/// Keeps the source's store current and says when it changed. A change
/// that finds the channel full is already covered by the one waiting there.
async fn watch_source(
    api: Api<Secret>,
    name: String,
    writer: reflector::store::Writer<Secret>,
    mut changed: mpsc::Sender<()>,
) {
    reflector::reflector(
        writer,
        watcher(
            api,
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        ),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|event| {
        match event {
            Ok(_) => {
                let _ = changed.try_send(());
            }
            Err(e) => tracing::warn!(error = %e, "watching the source Secret; retrying"),
        }
        async {}
    })
    .await;
}

async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = namespace.name_any();
    let target = &ctx.options.target_name;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &name);
    let copy = secrets
        .get_opt(target)
        .await
        .map_err(|source| ReconcileError::Read {
            namespace: name.clone(),
            name: target.clone(),
            source,
        })?;
    let source = ctx.source.get(&ctx.source_ref);
    let write_error = |source| ReconcileError::Write {
        namespace: name.clone(),
        name: target.clone(),
        source,
    };
    let standing = match plan::plan(&ctx.options, &namespace, source.as_deref(), copy.as_ref()) {
        Plan::Leave | Plan::NotSelected => Standing::NotSelected,
        Plan::InSync => Standing::InSync,
        Plan::SourceMissing => {
            tracing::warn!(namespace = %name, source = %ctx.options.source_ref(), "no source Secret of type kubernetes.io/dockerconfigjson; copies kept as they are");
            Standing::SourceMissing
        }
        Plan::Apply(secret) => {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            secrets
                .patch(target, &params, &Patch::Apply(&*secret))
                .await
                .map_err(write_error)?;
            ctx.standings.writes.inc();
            tracing::info!(namespace = %name, secret = %target, source = %ctx.options.source_ref(), "copy written");
            Standing::InSync
        }
        Plan::Remove { uid } => {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match secrets.delete(target, &params).await {
                Ok(_) => {
                    ctx.standings.writes.inc();
                    tracing::info!(namespace = %name, secret = %target, "copy removed: the namespace is no longer selected");
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(write_error(e)),
            }
            Standing::NotSelected
        }
        Plan::Conflict { uid, version } => {
            if ctx
                .standings
                .first_report(&name, uid.clone(), version.clone())
            {
                tracing::warn!(namespace = %name, secret = %target, "a Secret of this name exists that registry-rewriter did not create; it is left as it is");
                report_conflict(&ctx, &name, uid, version).await;
            }
            Standing::Conflict
        }
    };
    ctx.standings.record(&name, standing);
    Ok(Action::requeue(ctx.resync))
}

fn error_policy(namespace: Arc<Namespace>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.standings.reconcile_errors.inc();
    let name = namespace.name_any();
    ctx.standings.record(&name, Standing::Failed);
    tracing::warn!(namespace = %name, error = %crate::errors::Chain(error), "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// A Warning Event on the foreign Secret, for `kubectl describe` and
/// `kubectl get events`. Failing to write it is logged, never fatal.
async fn report_conflict(
    ctx: &Context,
    namespace: &str,
    uid: Option<String>,
    version: Option<String>,
) {
    let target = &ctx.options.target_name;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{target}.")),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            name: Some(target.clone()),
            namespace: Some(namespace.to_owned()),
            uid,
            resource_version: version,
            ..ObjectReference::default()
        },
        reason: Some("NotManagedByRegistryRewriter".into()),
        message: Some(format!(
            "Secret {namespace}/{target} was not created by registry-rewriter: it is left as it is and not kept in sync with {}",
            ctx.options.source_ref()
        )),
        type_: Some("Warning".into()),
        source: Some(EventSource {
            component: Some(FIELD_MANAGER.into()),
            host: None,
        }),
        reporting_component: Some(FIELD_MANAGER.into()),
        reporting_instance: Some(std::env::var("HOSTNAME").unwrap_or_else(|_| FIELD_MANAGER.into())),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    };
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), namespace);
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        tracing::warn!(namespace, error = %e, "could not record the conflict as an Event");
    }
}
