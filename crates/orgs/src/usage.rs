//! Usage: what an organization uses against its limits. API requests are counted in memory per
//! organization and added to `orgs.api_usage` in batches (one statement for every organization
//! seen since the last flush), never one write per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::OrgsError;
use crate::orgs::Orgs;

/// Counts of API requests not yet written, per organization.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingRequests(Arc<Mutex<HashMap<Uuid, i64>>>);

impl PendingRequests {
    fn take(&self) -> HashMap<Uuid, i64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn add(&self, org_id: Uuid, n: i64) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(org_id)
            .or_default() += n;
    }
}

/// Something used, and the limit on it (`None`: unlimited).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Used {
    pub used: i64,
    pub limit: Option<i64>,
}

/// The organization-level counts: members with pending invitations, API keys, API requests in
/// the current period.
#[derive(Debug, Clone, Serialize)]
pub struct OrgCounts {
    pub period_start: DateTime<Utc>,
    pub users: Used,
    pub api_keys: Used,
    /// API requests this period; `limit` is the rate, `api_requests_per_minute`.
    pub api_requests: Used,
}

impl Orgs {
    /// Counts one API request made in the organization.
    pub fn record_request(&self, org_id: Uuid) {
        self.pending().add(org_id, 1);
    }

    /// Writes the counted requests (one statement); on failure they are kept for the next try.
    pub async fn flush_requests(&self) -> Result<(), OrgsError> {
        let pending = self.pending().take();
        if pending.is_empty() {
            return Ok(());
        }
        let (ids, counts): (Vec<Uuid>, Vec<i64>) = pending.iter().map(|(k, v)| (*k, *v)).unzip();
        // The month's count and the day's, in one statement.
        let written = sqlx::query(
            "WITH u AS (
                 SELECT u.org_id, u.n FROM unnest($1::uuid[], $2::bigint[]) AS u(org_id, n)
                 WHERE EXISTS (SELECT 1 FROM control.tenants t WHERE t.id = u.org_id)
             ), daily AS (
                 INSERT INTO orgs.api_usage_daily (org_id, day, api_requests)
                 SELECT org_id, (now() AT TIME ZONE 'UTC')::date, n FROM u
                 ON CONFLICT (org_id, day)
                 DO UPDATE SET api_requests = api_usage_daily.api_requests + excluded.api_requests
             )
             INSERT INTO orgs.api_usage (org_id, period_start, api_requests)
             SELECT org_id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, n FROM u
             ON CONFLICT (org_id, period_start)
             DO UPDATE SET api_requests = api_usage.api_requests + excluded.api_requests",
        )
        .bind(&ids)
        .bind(&counts)
        .execute(self.runtime())
        .await;
        if let Err(e) = written {
            for (org_id, n) in pending {
                self.pending().add(org_id, n);
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Flushes the counted requests every `every` until `shutdown`, then once more.
    pub async fn run_request_flusher(
        self,
        every: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = &mut shutdown => break,
            }
            if let Err(e) = self.flush_requests().await {
                tracing::warn!(error = %e, "failed to write API usage; kept for the next flush");
            }
        }
        if let Err(e) = self.flush_requests().await {
            tracing::error!(error = %e, "failed to write API usage at shutdown");
        }
    }

    /// API requests this period of the `top` organizations with the most (by slug, most first),
    /// and the sum of all the others: a bounded set of labels for metrics.
    pub async fn top_api_usage(&self, top: i64) -> Result<(Vec<(String, i64)>, i64), OrgsError> {
        self.flush_requests().await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT t.slug, u.api_requests FROM orgs.api_usage u
             JOIN control.tenants t ON t.id = u.org_id
             WHERE u.period_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date
             ORDER BY u.api_requests DESC, t.slug",
        )
        .fetch_all(self.runtime())
        .await?;
        let split = usize::try_from(top).unwrap_or(0).min(rows.len());
        let other = rows[split..].iter().map(|(_, n)| n).sum();
        let mut rows = rows;
        rows.truncate(split);
        Ok((rows, other))
    }

    /// API requests per day (UTC) in the current period, this server's unwritten ones included:
    /// every day from the first of the month to today, days without requests as 0.
    pub async fn requests_per_day(&self, org_id: Uuid) -> Result<Vec<(NaiveDate, i64)>, OrgsError> {
        self.flush_requests().await?;
        Ok(sqlx::query_as(
            "SELECT d.day::date, coalesce(u.api_requests, 0)
             FROM generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'),
                                  (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d(day)
             LEFT JOIN orgs.api_usage_daily u ON u.org_id = $1 AND u.day = d.day::date
             ORDER BY d.day",
        )
        .bind(org_id)
        .fetch_all(self.runtime())
        .await?)
    }

    /// The organization's counts against its limits, this server's unwritten requests included.
    pub async fn counts(&self, org_id: Uuid) -> Result<OrgCounts, OrgsError> {
        self.flush_requests().await?;
        let mut conn = self.runtime().acquire().await?;
        let users = crate::limits::users_in_use(&mut conn, org_id, None).await?;
        let (api_keys, period_start, api_requests): (i64, NaiveDate, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM orgs.api_keys WHERE org_id = $1 AND revoked_at IS NULL),
                    p.start,
                    coalesce((SELECT api_requests FROM orgs.api_usage
                              WHERE org_id = $1 AND period_start = p.start), 0)
             FROM (SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date AS start) p",
        )
        .bind(org_id)
        .fetch_one(&mut *conn)
        .await?;
        let users_limit =
            crate::limits::limit_of(&mut conn, org_id, crate::Limit::MaxUsers).await?;
        let keys_limit =
            crate::limits::limit_of(&mut conn, org_id, crate::Limit::MaxApiKeys).await?;
        let rate =
            crate::limits::limit_of(&mut conn, org_id, crate::Limit::ApiRequestsPerMinute).await?;
        Ok(OrgCounts {
            period_start: period_start
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc())
                .unwrap_or_else(Utc::now),
            users: Used {
                used: users,
                limit: users_limit,
            },
            api_keys: Used {
                used: api_keys,
                limit: keys_limit,
            },
            api_requests: Used {
                used: api_requests,
                limit: rate,
            },
        })
    }
}
