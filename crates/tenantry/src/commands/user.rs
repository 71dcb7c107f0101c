//! `tenantry user create`: users made from the command line, such as the first platform admin.

use tenantry_identity::{Email, Identity};
use tenantry_tenancy::{Operator, Tenancy};

use crate::cli::UserCommand;
use crate::settings::Settings;

pub async fn run(
    tenancy: &Tenancy,
    settings: &Settings,
    command: UserCommand,
) -> anyhow::Result<()> {
    let identity = Identity::open(tenancy, &Operator::new(tenancy), settings.identity()).await?;
    match command {
        UserCommand::Create {
            email,
            password,
            name,
            platform_admin,
            output,
        } => {
            let email = Email::parse(&email).map_err(anyhow::Error::msg)?;
            let user = identity
                .create_user(&email, &password, &name, platform_admin)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&user)?);
            } else {
                let role = if user.platform_admin {
                    " (platform admin)"
                } else {
                    ""
                };
                println!(
                    "user {} <{}> created{role}: {}",
                    user.name, user.email, user.id
                );
            }
            Ok(())
        }
    }
}
