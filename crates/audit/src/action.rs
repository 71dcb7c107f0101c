//! What an audit entry says was done: a closed set of actions, `<noun>.<past participle>`
//! (`member.added`, `monitor.deleted`), so a misspelt one cannot compile. A filter names one
//! action or a family of them (`member.`); one that names neither is refused.

use std::fmt;
use std::str::FromStr;

macro_rules! actions {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// An action an audit entry records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction { $($variant),+ }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $(AuditAction::$variant => $text),+ }
            }
        }
    };
}

actions! {
    OrganizationCreated = "organization.created",
    OrganizationUpdated = "organization.updated",
    OrganizationDeleted = "organization.deleted",
    OrganizationPurged = "organization.purged",
    OrganizationMoved = "organization.moved",
    OrganizationExported = "organization.exported",
    OrganizationImported = "organization.imported",
    PlanChanged = "plan.changed",
    MemberAdded = "member.added",
    MemberRoleChanged = "member.role_changed",
    MemberRemoved = "member.removed",
    MemberLeft = "member.left",
    InvitationCreated = "invitation.created",
    InvitationResent = "invitation.resent",
    InvitationRevoked = "invitation.revoked",
    InvitationAccepted = "invitation.accepted",
    ApiKeyCreated = "api_key.created",
    ApiKeyRevoked = "api_key.revoked",
    MonitorCreated = "monitor.created",
    MonitorUpdated = "monitor.updated",
    MonitorDeleted = "monitor.deleted",
    AlertChannelCreated = "alert_channel.created",
    AlertChannelUpdated = "alert_channel.updated",
    AlertChannelDeleted = "alert_channel.deleted",
    AlertChannelTested = "alert_channel.tested",
    StatusPageCreated = "status_page.created",
    StatusPageUpdated = "status_page.updated",
    StatusPageDeleted = "status_page.deleted",
    AgentCreated = "agent.created",
    AgentDeleted = "agent.deleted",
    TenantCreated = "tenant.created",
    TenantSuspended = "tenant.suspended",
    TenantActivated = "tenant.activated",
    TenantDeleted = "tenant.deleted",
    TenantRestored = "tenant.restored",
    TenantPurged = "tenant.purged",
}

impl FromStr for AuditAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not an audit action"))
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Which actions a listing keeps: one, or a family (every action starting with `family.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionFilter {
    Exact(AuditAction),
    /// The noun with its dot: `member.`.
    Family(&'static str),
}

impl ActionFilter {
    /// What the listing's query compares: the action, or the family's prefix.
    pub fn as_str(&self) -> &'static str {
        match self {
            ActionFilter::Exact(action) => action.as_str(),
            ActionFilter::Family(prefix) => prefix,
        }
    }
}

impl FromStr for ActionFilter {
    type Err = String;
    /// An action (`member.added`), or a family ending in a dot (`member.`) that some action
    /// belongs to.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.ends_with('.') {
            return AuditAction::ALL
                .iter()
                .map(|a| a.as_str())
                .find(|a| a.starts_with(s))
                .map(|a| ActionFilter::Family(&a[..s.len()]))
                .ok_or_else(|| format!("no audit action starts with {s:?}"));
        }
        s.parse().map(ActionFilter::Exact).map_err(|e| {
            format!("{e}; give an action such as member.added, or a family such as member.")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_and_are_noun_dot_verb() {
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse::<AuditAction>(), Ok(*action));
            let (noun, verb) = action.as_str().split_once('.').unwrap();
            assert!(!noun.is_empty() && !verb.is_empty() && !verb.contains('.'));
        }
    }

    #[test]
    fn filters_name_an_action_or_a_family_and_nothing_else() {
        assert_eq!(
            "member.added".parse(),
            Ok(ActionFilter::Exact(AuditAction::MemberAdded))
        );
        assert_eq!("member.".parse(), Ok(ActionFilter::Family("member.")));
        assert!("member.dropped".parse::<ActionFilter>().is_err());
        assert!("nothing.".parse::<ActionFilter>().is_err());
        assert!("member".parse::<ActionFilter>().is_err());
    }
}
