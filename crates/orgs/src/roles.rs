//! Roles and the permission matrix: one table, consulted by every route.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

/// What a caller may try to do in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See the organization, its members and its monitoring resources.
    Read,
    /// Create and change monitors, alert channels, status pages, agents.
    ManageMonitoring,
    /// Change the organization's settings, members, invitations, API keys; read its audit log.
    Administer,
    /// Grant or remove the owner role.
    ManageOwners,
    /// Delete the organization, export it, see billing.
    Own,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Read,
        Action::ManageMonitoring,
        Action::Administer,
        Action::ManageOwners,
        Action::Own,
    ];
}

/// The permission matrix: the least role that may perform each action.
const MATRIX: [(Action, Role); 5] = [
    (Action::Read, Role::Viewer),
    (Action::ManageMonitoring, Role::Member),
    (Action::Administer, Role::Admin),
    (Action::ManageOwners, Role::Owner),
    (Action::Own, Role::Owner),
];

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    pub fn may(self, action: Action) -> bool {
        MATRIX
            .iter()
            .find(|(a, _)| *a == action)
            .is_some_and(|(_, least)| self >= *least)
    }

    /// Refuses, saying why, unless this role allows `action`.
    pub fn require(self, action: Action) -> Result<(), crate::OrgsError> {
        if self.may(action) {
            Ok(())
        } else {
            Err(crate::OrgsError::Forbidden(format!(
                "Your role ({self}) does not allow this."
            )))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role: owner, admin, member or viewer"))
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_row_in_the_matrix() {
        for action in Action::ALL {
            assert!(MATRIX.iter().any(|(a, _)| *a == action), "{action:?}");
        }
    }

    #[test]
    fn the_matrix_reads_as_documented() {
        let expected = [
            (Role::Viewer, [true, false, false, false, false]),
            (Role::Member, [true, true, false, false, false]),
            (Role::Admin, [true, true, true, false, false]),
            (Role::Owner, [true, true, true, true, true]),
        ];
        for (role, allowed) in expected {
            for (action, allowed) in Action::ALL.into_iter().zip(allowed) {
                assert_eq!(role.may(action), allowed, "{role} {action:?}");
            }
        }
    }

    #[test]
    fn a_higher_role_may_do_everything_a_lower_one_may() {
        for action in Action::ALL {
            for pair in Role::ALL.windows(2) {
                assert!(!pair[0].may(action) || pair[1].may(action));
            }
        }
    }

    #[test]
    fn roles_parse() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }
}
