//! Small pieces several domain crates share, so none reaches into another for them: the email
//! address type ([`Email`]) and the keyring that seals secrets at rest ([`seal`]).

mod email;
pub mod seal;

pub use email::Email;
