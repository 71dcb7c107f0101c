-- The audit entries about one resource, oldest first: who registered an agent (its
-- `agent.created` entry) is read from here when agents are listed.
CREATE INDEX audit_log_target_idx ON audit_log (tenant_id, target_kind, target_id, seq);
