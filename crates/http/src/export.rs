//! `GET /api/v1/organizations/{id}/export`: the owner downloads an archive of everything the
//! organization owns, streamed as it is read (`tenantry_archive::export`). It also answers
//! while the organization is soft-deleted, within its retention: that is how an export is
//! offered before the data goes.
//!
//! The door refuses a soft-deleted tenant, so the export reads the tenant's storage as the owner
//! role, scoped to the tenant, in a read-only transaction: the one request path that uses the
//! owner role, and it cannot write.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::Response;
use futures::stream;
use tenantry_orgs::{Action, Role};
use tenantry_tenancy::{TenantRecord, TenantStatus};
use tokio::sync::mpsc;
use tracing::Instrument;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::AppError;
use crate::extract::{AuthUser, admit, require};
use crate::openapi::{NotFound, RateLimited, SignedIn};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export))
}

/// The organizations with an export streaming from this instance.
#[derive(Debug, Default, Clone)]
pub struct Exporting(Arc<Mutex<HashSet<Uuid>>>);

impl Exporting {
    /// The organization's one export, or `None` while another is streaming.
    fn claim(&self, org_id: Uuid) -> Option<ExportClaim> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(org_id).then(|| ExportClaim {
            exporting: self.clone(),
            org_id,
        })
    }
}

/// Held by an export until its last byte is written, or it failed, or its client went away.
struct ExportClaim {
    exporting: Exporting,
    org_id: Uuid,
}

impl Drop for ExportClaim {
    fn drop(&mut self) {
        let mut set = self.exporting.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.org_id);
    }
}

/// The archive's media type.
const GZIP: &str = "application/gzip";

/// A `.tar.gz` archive: `manifest.json` (format version, source, every file's rows and SHA-256),
/// `organization.json`, `plan_overrides.json`, `members.jsonl`, `invitations.jsonl` and
/// `api_keys.jsonl` (metadata, never a secret or its hash), `api_usage.jsonl`, `audit.jsonl`, and
/// `tenant/<table>.jsonl` for each tenant table.
struct Archive;

impl PartialSchema for Archive {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some(
                "A .tar.gz archive of everything the organization owns: one JSON Lines file per \
                 table and manifest.json with each file's rows and SHA-256",
            ))
            .into()
    }
}

impl ToSchema for Archive {}

/// Export an organization: an archive of everything it owns (owner)
///
/// Streams a `.tar.gz`; also while the organization is deleted and still restorable, so its
/// data can be taken before it goes. Never holds a password, API-key or invitation-token hash,
/// nor anything of another organization. `tenantry tenant import` restores it into a new tenant
/// of any tier.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{id}/export",
    tag = "organizations",
    operation_id = "export_organization",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    responses(
        (status = 200, description = "The archive, streamed", content_type = "application/gzip", body = inline(Archive),
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"<slug>-<YYYY-MM-DD>.tar.gz\"`"))),
        SignedIn,
        (status = 403, description = "`forbidden`: not an owner, or exports are not part of the plan; `tenant_suspended`", body = crate::error::Problem, content_type = crate::openapi::PROBLEM),
        (status = 404, response = NotFound),
        (status = 409, description = "`export_in_progress`: an export of this organization is already streaming", body = crate::error::Problem, content_type = crate::openapi::PROBLEM),
        (status = 429, response = RateLimited),
        (status = 503, description = "`export_busy`: this server is streaming as many exports as it does at once; retry after `Retry-After` seconds", body = crate::error::Problem, content_type = crate::openapi::PROBLEM,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn export(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    download(&state, origin.by_user(claims.sub), claims.sub, &id).await
}

/// Streams the archive of organization `id` (id or slug) to user `user_id`, who must be its
/// owner: the JSON API's export and the console's "Download an export".
pub(crate) async fn download(
    state: &AppState,
    audit: tenantry_audit::AuditContext,
    user_id: Uuid,
    id: &str,
) -> Result<Response, AppError> {
    let (record, role) = exportable(state, user_id, id).await?;
    let entitled = state.orgs.entitlements(&record).await?;
    if entitled.features.get("export") == Some(&serde_json::Value::Bool(false)) {
        return Err(AppError::forbidden(
            "Exports are not part of this organization's plan.",
        ));
    }
    // One export per organization, and a few per instance: each is held until the archive's
    // last byte is written, or it fails, or its client stops reading for 30 s (the connection
    // is then closed, and the export with its transaction ends).
    let claim = state
        .exporting
        .claim(record.id.as_uuid())
        .ok_or(AppError::ExportInProgress)?;
    let slot = state
        .exports
        .clone()
        .try_acquire_owned()
        .map_err(|_| AppError::ExportBusy)?;
    let filename = format!(
        "{}-{}.tar.gz",
        record.slug,
        chrono::Utc::now().format("%Y-%m-%d")
    );
    let (sender, receiver) = mpsc::channel::<io::Result<Vec<u8>>>(4);
    let writer = tenantry_archive::ChannelWriter::new(sender.clone());
    let task_state = state.clone();
    tokio::spawn(
        async move {
            let _held = (claim, slot);
            let exported = tenantry_archive::export(
                &task_state.tenancy,
                &record,
                writer,
                &tenantry_archive::Quiet,
            )
            .await;
            match exported {
                Ok(exported) => {
                    // Recorded before the body ends (the sender is still held), so a client that
                    // read the whole archive finds the entry.
                    let rows: u64 = exported.manifest.files.iter().map(|f| f.rows).sum();
                    let change = tenantry_audit::Change {
                        action: tenantry_audit::AuditAction::OrganizationExported,
                        target_kind: "organization",
                        target_id: Some(record.id.to_string()),
                        before: None,
                        after: Some(serde_json::json!({
                            "manifest_sha256": exported.manifest_sha256,
                            "format_version": exported.manifest.format_version,
                            "files": exported.manifest.files.len(),
                            "rows": rows,
                            "role": role,
                        })),
                    };
                    task_state
                        .orgs
                        .record_after(Some(record.id.as_uuid()), &audit, &change)
                        .await;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the export failed; the response was cut short");
                    sender
                        .send(Err(io::Error::other("the export failed")))
                        .await
                        .ok();
                }
            }
            drop(sender);
        }
        .instrument(tracing::Span::current()),
    );
    let body = stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((chunk.map(Bytes::from), receiver))
    });
    Response::builder()
        .header(CONTENT_TYPE, GZIP)
        .header(
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        )
        .body(Body::from_stream(body))
        .map_err(|e| AppError::Unexpected(e.into()))
}

/// The organization if the caller may export it: a member (else the same 404 as a missing
/// organization), of an active organization or one deleted but not yet purged (the export
/// offered before deletion; to anyone but an owner a deleted organization stays a 404), with the
/// owner role. The request counts against the organization's rate limit.
async fn exportable(
    state: &AppState,
    user_id: uuid::Uuid,
    id: &str,
) -> Result<(TenantRecord, Role), AppError> {
    let (record, role) = state.orgs.for_member(id, user_id).await?;
    match record.status {
        TenantStatus::Active => {}
        TenantStatus::Deleted if !record.purging && role.may(Action::Own) => {}
        TenantStatus::Suspended => return Err(AppError::suspended()),
        TenantStatus::Deleted | TenantStatus::Provisioning | TenantStatus::Failed => {
            return Err(AppError::NotFound);
        }
    }
    admit(state, record.id.as_uuid()).await?;
    require(role, Action::Own)?;
    state
        .orgs
        .require_feature(record.id.as_uuid(), tenantry_orgs::Feature::Export)
        .await?;
    Ok((record, role))
}
