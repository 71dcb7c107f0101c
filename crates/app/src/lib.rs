//! The application's schemas, in the order they are applied: the control database's schemas of
//! each domain crate, and the tenant migration sets after the engine's own. The binary, the tests
//! and the benchmark open the engine with these and nothing else.

use tenantry_tenancy::{ControlSchema, TenantSchema};

/// The application's schemas in the control database, each after those it references.
pub fn control_schemas() -> Vec<ControlSchema> {
    vec![
        tenantry_identity::control_schema(),
        tenantry_orgs::control_schema(),
        tenantry_mail::control_schema(),
        tenantry_audit::control_schema(),
        tenantry_monitoring::control_schema(),
    ]
}

/// The tenant schema: the engine's set, then monitoring's, then the audit log's.
pub fn tenant_schema() -> TenantSchema {
    TenantSchema::new([
        tenantry_monitoring::tenant_set(),
        tenantry_audit::tenant_set(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenant_table_enables_and_forces_rls() {
        for set in tenant_schema().sets() {
            for m in set.migrations().items() {
                let unguarded = tenantry_tenancy::lint::tables_without_rls(&m.sql);
                assert!(unguarded.is_empty(), "{}: {unguarded:?}", m.name);
            }
        }
    }

    #[test]
    fn every_set_is_numbered_from_one_without_gaps() {
        let schema = tenant_schema();
        let control = control_schemas().into_iter().map(|s| s.migrations);
        let tenant = schema.sets().iter().map(|s| s.migrations().clone());
        for set in control.chain(tenant) {
            for (i, m) in set.items().iter().enumerate() {
                assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            }
        }
    }

    /// Releases before sets applied one tenant set of ten migrations; at each of its versions,
    /// the sets together hold one more (its first became the engine's `tenant_settings` and
    /// monitoring's `monitors`).
    #[test]
    fn the_single_set_of_earlier_releases_maps_onto_the_sets() {
        let schema = tenant_schema();
        for legacy in 0..=10 {
            let total: i32 = schema.legacy_versions(legacy).iter().map(|(_, v)| v).sum();
            assert_eq!(total, legacy + i32::from(legacy > 0), "version {legacy}");
        }
        assert!(schema.legacy_versions(10).covers(&schema.latest()));
    }
}
