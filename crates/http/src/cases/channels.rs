//! Alert channels and status pages: creating, replacing and deleting them (the plan's
//! features, the SSRF guard on webhook URLs, the audit entry), and sending a channel a test
//! alert. One use case each for the JSON API and the console.

use tenantry_monitoring::alerts::{self, AlertChannel, AlertChannelInput, AlertError, Saved};
use tenantry_monitoring::{self as monitoring, Replaced, StatusPage, StatusPageInput};
use tenantry_orgs::Action;
use uuid::Uuid;

use crate::cases::monitors::Acting;
use crate::error::AppError;
use crate::state::AppState;

/// Creates an alert channel (members and up); a webhook without a secret gets one, shown in
/// full by the returned channel only.
pub(crate) async fn create_channel(
    state: &AppState,
    acting: &Acting<'_>,
    input: &AlertChannelInput,
) -> Result<Saved, AppError> {
    check_channel(state, acting, input).await?;
    let mut tx = acting.ctx.begin().await?;
    let saved = alerts::create_channel(&mut tx, &state.alert_keys, input)
        .await
        .map_err(app_error)?;
    let change = channel_change(
        tenantry_audit::AuditAction::AlertChannelCreated,
        saved.channel.id,
        None,
        Some(&saved.channel),
    );
    tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Replaces alert channel `id` (members and up); a webhook without a new secret keeps its own.
pub(crate) async fn replace_channel(
    state: &AppState,
    acting: &Acting<'_>,
    id: Uuid,
    input: &AlertChannelInput,
) -> Result<Saved, AppError> {
    check_channel(state, acting, input).await?;
    let mut tx = acting.ctx.begin().await?;
    let before = alerts::get_channel(&mut tx, id).await?;
    // Viewers and members are shown a webhook's URL cut to its origin: sent back unchanged, it
    // keeps the stored URL rather than replacing it with the cut one.
    let mut input = input.clone();
    if let Some(stored) = &before
        && stored.url.is_some()
        && input.url.is_some()
        && input.url == stored.clone().with_url_masked().url
    {
        input.url = stored.url.clone();
    }
    let saved = alerts::update_channel(&mut tx, &state.alert_keys, id, &input)
        .await
        .map_err(app_error)?
        .ok_or(AppError::NotFound)?;
    let change = channel_change(
        tenantry_audit::AuditAction::AlertChannelUpdated,
        id,
        before.as_ref(),
        Some(&saved.channel),
    );
    tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Deletes alert channel `id` (members and up); its deliveries not made yet are dropped.
pub(crate) async fn remove_channel(acting: &Acting<'_>, id: Uuid) -> Result<(), AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    let mut tx = acting.ctx.begin().await?;
    let before = alerts::get_channel(&mut tx, id).await?;
    let deleted = alerts::delete_channel(&mut tx, id).await?;
    if deleted {
        let change = channel_change(
            tenantry_audit::AuditAction::AlertChannelDeleted,
            id,
            before.as_ref(),
            None,
        );
        tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    }
    tx.commit().await?;
    if !deleted {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// Sends channel `id` a test alert (members and up), delivered (and retried) by the deliverers
/// like an incident's; `sent_by` is named in it.
pub(crate) async fn test_channel(
    state: &AppState,
    acting: &Acting<'_>,
    id: Uuid,
    sent_by: &str,
) -> Result<(), AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    let org_id = acting.ctx.tenant_id().as_uuid();
    let mut tx = acting.ctx.begin().await?;
    if !alerts::enqueue_test(&mut tx, id, sent_by).await? {
        return Err(AppError::NotFound);
    }
    let change = tenantry_audit::Change {
        action: tenantry_audit::AuditAction::AlertChannelTested,
        target_kind: "alert_channel",
        target_id: Some(id.to_string()),
        before: None,
        after: None,
    };
    tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    // The deliverers learn of it from the wakeup, written before the delivery commits.
    let mut control = tx.control(state.tenancy.control_db()).await?;
    alerts::note_pending_in(&mut control, org_id).await?;
    drop(control);
    tx.commit().await?;
    Ok(())
}

/// Creates a status page (members and up; the plan's `status_pages` feature).
pub(crate) async fn create_page(
    state: &AppState,
    acting: &Acting<'_>,
    input: &StatusPageInput,
) -> Result<StatusPage, AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    let spec = crate::status_pages::parse(input)?;
    state
        .orgs
        .require_feature(
            acting.ctx.tenant_id().as_uuid(),
            tenantry_orgs::Feature::StatusPages,
        )
        .await?;
    let mut tx = acting.ctx.begin().await?;
    let page = monitoring::create_page(&mut tx, &spec).await?;
    let change = page_change(
        tenantry_audit::AuditAction::StatusPageCreated,
        page.id,
        None,
        Some(&page),
    );
    tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    tx.commit().await?;
    Ok(page)
}

/// Replaces status page `id` (members and up).
pub(crate) async fn replace_page(
    acting: &Acting<'_>,
    id: Uuid,
    input: &StatusPageInput,
) -> Result<StatusPage, AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    let spec = crate::status_pages::parse(input)?;
    let mut tx = acting.ctx.begin().await?;
    let Replaced { before, after } = monitoring::update_page(&mut tx, id, &spec)
        .await?
        .ok_or(AppError::NotFound)?;
    let change = page_change(
        tenantry_audit::AuditAction::StatusPageUpdated,
        id,
        Some(&before),
        Some(&after),
    );
    tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    tx.commit().await?;
    Ok(after)
}

/// Deletes status page `id` (members and up); its public address answers 404 from then on.
pub(crate) async fn remove_page(acting: &Acting<'_>, id: Uuid) -> Result<(), AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    let mut tx = acting.ctx.begin().await?;
    let before = monitoring::delete_page(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let change = page_change(
        tenantry_audit::AuditAction::StatusPageDeleted,
        id,
        Some(&before),
        None,
    );
    tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    tx.commit().await?;
    Ok(())
}

/// What creating or replacing a channel checks first: the role, the input, the plan and the
/// SSRF guard.
async fn check_channel(
    state: &AppState,
    acting: &Acting<'_>,
    input: &AlertChannelInput,
) -> Result<(), AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    input
        .validate()
        .map_err(|e| AppError::invalid(e.field, e.detail))?;
    require_channel_feature(state, acting, input).await
}

/// A channel's kind must be in the organization's plan (`webhook_alerts`, `email_alerts`), and
/// a webhook's URL must pass the SSRF guard.
async fn require_channel_feature(
    state: &AppState,
    acting: &Acting<'_>,
    input: &AlertChannelInput,
) -> Result<(), AppError> {
    let feature = match input.kind.as_str() {
        "email" => tenantry_orgs::Feature::EmailAlerts,
        _ => tenantry_orgs::Feature::WebhookAlerts,
    };
    let org_id = acting.ctx.tenant_id().as_uuid();
    state.orgs.require_feature(org_id, feature).await?;
    if let Some(url) = input.url.as_deref() {
        crate::cases::monitors::refuse_guarded_target(state, org_id, "url", url).await?;
    }
    Ok(())
}

fn app_error(e: AlertError) -> AppError {
    match e {
        AlertError::Invalid(invalid) => AppError::invalid(invalid.field, invalid.detail),
        AlertError::Unexpected(e) => AppError::Unexpected(e),
    }
}

/// A channel change as the audit trail records it: as reads show the channel, so a webhook's
/// secret only as its hint.
fn channel_change(
    action: tenantry_audit::AuditAction,
    id: Uuid,
    before: Option<&AlertChannel>,
    after: Option<&AlertChannel>,
) -> tenantry_audit::Change {
    let summary = |c: &AlertChannel| serde_json::to_value(c).unwrap_or_default();
    tenantry_audit::Change {
        action,
        target_kind: "alert_channel",
        target_id: Some(id.to_string()),
        before: before.map(summary),
        after: after.map(summary),
    }
}

/// A status page change as the audit trail records it.
fn page_change(
    action: tenantry_audit::AuditAction,
    id: Uuid,
    before: Option<&StatusPage>,
    after: Option<&StatusPage>,
) -> tenantry_audit::Change {
    let summary = |p: &StatusPage| serde_json::to_value(p).unwrap_or_default();
    tenantry_audit::Change {
        action,
        target_kind: "status_page",
        target_id: Some(id.to_string()),
        before: before.map(summary),
        after: after.map(summary),
    }
}
