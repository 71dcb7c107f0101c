//! Compile-time check that the engine's operations are `Send` futures, so HTTP handlers and
//! spawned tasks can await them. (An iterator adapter or `RawSql::execute` held across an await
//! once made them `!Send` without any error inside this crate.)

#![allow(dead_code)]

use crate::*;

fn assert_send<T: Send>(_: T) {}

async fn operations_are_send(engine: Tenancy, new: NewTenant, id: TenantId, ctx: TenantCtx) {
    assert_send(engine.create_tenant(&new));
    assert_send(engine.provision(id));
    assert_send(engine.resolve("x"));
    assert_send(ctx.begin());
    assert_send(engine.suspend("x"));
    assert_send(engine.restore("x"));
    assert_send(engine.hard_delete("x", "y"));
    assert_send(engine.resume_purges());
    assert_send(engine.resume_provisioning());
    assert_send(engine.migrate_fleet(1, &Quiet));
    assert_send(engine.migration_status(1));
}
