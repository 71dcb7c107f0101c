//! Redis, through which instances share the organizations' budgets, stopped and started again
//! (empty) under load: every request is still served, on the instance's own budgets meanwhile,
//! and the shared budget is used again once Redis is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use tenantry_ratelimit::server::RedisServer;
use uuid::Uuid;

use super::{Org, configure, create_monitor, created_id, heartbeat};
use crate::support::{Server, connect, data_dir};

/// Whether Redis holds the organization's budget, `tenantry:<org id>:api_requests` (a refused
/// connection counts as no).
async fn budget_in_redis(client: &redis::Client, key: &str) -> bool {
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(&mut connection)
        .await
        .is_ok_and(|n| n == 1)
}

/// How long each step of the test may take to happen.
const WITHIN: Duration = Duration::from_secs(30);

/// Waits until Redis holds the organization's budget `key`.
async fn until_budget_in_redis(what: &str, client: &redis::Client, key: &str) {
    tenantry_testkit::eventually(what, WITHIN, async || {
        if budget_in_redis(client, key).await {
            Ok(())
        } else {
            Err(format!("no {key} in Redis"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_served_while_redis_is_away_and_the_shared_budget_resumes() {
    let mut redis = RedisServer::start()
        .await
        .unwrap_or_else(|e| panic!("this test needs a redis-server: {e}"));
    let dir = data_dir();
    configure(dir.path(), &format!("redis_url = \"{}\"\n", redis.url()));
    let server = Server::start(dir.path());
    let org = Org::new(&server, dir.path()).await;
    let http = reqwest::Client::new();
    let created = create_monitor(&http, &server.base, &org.key, &heartbeat("watched"))
        .await
        .unwrap();
    let monitor = created_id(created).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let budget = format!("tenantry:{}:api_requests", org.id);

    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (stop, http) = (stop.clone(), http.clone());
        let url = format!("{}/api/v1/monitors/{monitor}", server.base);
        let key = org.key.clone();
        readers.spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) && statuses.len() < 20_000 {
                let response = http.get(&url).bearer_auth(&key).send().await.unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        });
    }
    until_budget_in_redis("the budget in Redis", &client, &budget).await;
    redis.stop().await;
    // A while on the instance's own budgets: the key cannot come back while Redis is away.
    let metrics = format!("{}/metrics", server.base);
    let metrics_token = server.metrics_token();
    let served = async || {
        let text = http
            .get(&metrics)
            .bearer_auth(&metrics_token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("tenantry_http_requests_total{") && l.contains("monitors"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = served().await;
    tenantry_testkit::eventually("200 requests without Redis", WITHIN, async || {
        let now = served().await;
        if now >= before + 200.0 {
            Ok(())
        } else {
            Err(format!(
                "{} requests served since Redis stopped",
                now - before
            ))
        }
    })
    .await;
    redis.restart().await.unwrap();
    until_budget_in_redis("the budget in Redis again", &client, &budget).await;
    stop.store(true, Ordering::Relaxed);
    let statuses = readers.join_all().await.concat();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{} of {} not 200",
        statuses.iter().filter(|s| **s != 200).count(),
        statuses.len()
    );

    // Every request was counted in the organization's usage (flushed every 10 s).
    let mut owner = connect(dir.path(), "tenantry_owner", "tenantry")
        .await
        .unwrap();
    let org_id: Uuid = org.id.parse().unwrap();
    tenantry_testkit::eventually("the requests counted", WITHIN, async || {
        let counted: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(api_requests), 0)::bigint FROM orgs.api_usage WHERE org_id = $1",
        )
        .bind(org_id)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        if counted >= statuses.len() as i64 {
            Ok(())
        } else {
            Err(format!("{counted} of {} requests counted", statuses.len()))
        }
    })
    .await;
    assert!(server.stop(Signal::SIGTERM).success());
}
