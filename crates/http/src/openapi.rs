//! The OpenAPI 3.1 document and the browsable docs. Each route module's `routes()` registers its
//! handlers with `utoipa_axum::routes!`, which takes the path, method and documentation from the
//! handler's `#[utoipa::path]`: a route cannot exist without its documentation. `server::api()`
//! merges them into [`ApiDoc`]; `router()` serves the result at `/api/openapi.json` and Swagger UI
//! (embedded in the binary from the `utoipa-swagger-ui-vendored` crate: no internet at build or
//! run time) at `/api/docs`.
//!
//! What handlers share lives here: the problem responses (one component per status, and groups
//! per extractor: [`JsonBody`], [`SignedIn`], [`InTenant`], [`AdminOnly`]), the `X-Tenant`
//! header, and the schemas of types whose crates do not derive them ([`schemas`]).

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToResponse};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::Problem;
use crate::state::AppState;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Where Swagger UI is served (`/api/docs` redirects to `/api/docs/`, so its relative asset paths
/// resolve under it).
pub const DOCS_PATH: &str = "/api/docs";
/// The media type of every error body.
pub const PROBLEM: &str = "application/problem+json";

/// The document's frame: info, tags, the security scheme and the shared components. Paths come
/// from the route modules.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenantry API",
        version = env!("CARGO_PKG_VERSION"),
        description = "Tenantry, multi-tenant uptime and infrastructure monitoring.\n\n\
            Authenticate with `Authorization: Bearer <token>`: an access token (a JWT from \
            sign-up, login, refresh or switch) or, on tenant-scoped routes, an API key (`tnt_…`). \
            Tenant-scoped routes act in one organization: the API key's, else the `X-Tenant` \
            header's (id or slug), else the access token's `org_id`. Errors are \
            `application/problem+json` (RFC 9457) with a stable `code`. Lists take `?limit=` \
            (1 to 200, default 50) and `?cursor=` and answer `{items, next_cursor}`."
    ),
    modifiers(&BearerScheme),
    paths(crate::console::invitation_page),
    components(
        schemas(Problem),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            Gone,
            PayloadTooLarge,
            UnsupportedMediaType,
            ValidationFailed,
            Internal,
            NotReady,
            NotAdmin,
            RateLimited
        )
    ),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "Sign-up, login, tokens and the current user"),
        (name = "organizations", description = "The caller's organizations"),
        (name = "members", description = "An organization's members, and the caller's own moves"),
        (name = "api-keys", description = "An organization's API keys"),
        (name = "monitors", description = "Monitors of the organization in context, their \
            check results and incidents"),
        (name = "alert-channels", description = "Where the organization's incidents are \
            announced: webhooks (signed JSON POSTs) and email addresses"),
        (name = "heartbeats", description = "Pings of heartbeat (push) monitors: no \
            authentication, the token in the path is the capability"),
        (name = "agents", description = "Agents of the organization in context, which run \
            its monitors' checks from other machines (`tenantry agent`), and the routes an agent \
            calls with its token (`Authorization: Bearer tagt_…`)"),
        (name = "invitations", description = "Invitations by email to an organization, and \
            accepting them (signed in, or signing up on the way)"),
        (name = "status-pages", description = "Status pages of the organization in context, \
            and each public page as anyone sees it (no authentication)"),
        (name = "admin", description = "Platform administration: every tenant, whatever its \
            members say. Platform admins only: to anyone else, signed in or not, these routes \
            do not exist (`404 not_found`)"),
    )
)]
pub struct ApiDoc;

/// The name of the security scheme every authenticated operation lists, as
/// `security(("bearer" = []))` (the attribute takes a literal only).
pub const BEARER: &str = "bearer";

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`Authorization: Bearer <access token>`: an Ed25519-signed JWT (`alg: \
                         EdDSA`, `kid` in `/.well-known/jwks.json`), valid 15 minutes. API keys \
                         use the same header, `Authorization: Bearer tnt_…`; they act on their \
                         organization's tenant-scoped resources only.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <metrics token>` for `/metrics`: generated at                          the server's first start and kept in its data folder; `tenantry metrics                          token` prints it.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of every route registered through an `OpenApiRouter`.
pub fn document() -> utoipa::openapi::OpenApi {
    crate::server::api().into_openapi()
}

/// The routes serving the document and Swagger UI over it.
pub fn docs(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi).into()
}

/// The `X-Tenant` header of tenant-scoped routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct TenantHeader {
    /// The organization to act in (id or slug), which the caller must belong to. Without it, the
    /// access token's `org_id`. With an API key, the key's organization: naming another is 404.
    #[param(rename = "X-Tenant", required = false, example = "acme")]
    pub x_tenant: String,
}

/// Malformed: `bad_request` (the body is not well-formed JSON, or a query parameter cannot be
/// read), or `tenant_required` (a tenant-scoped route with no organization in context).
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct BadRequest(pub Problem);

/// Not signed in: `unauthorized` (no bearer token, or an API key where a user's token is
/// needed) or `invalid_token` (expired, revoked or unknown token or API key).
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct Unauthorized(pub Problem);

/// `forbidden`: the caller's role does not allow this; `tenant_suspended`: the organization is
/// suspended.
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct Forbidden(pub Problem);

/// `not_found`: no such resource, or one of an organization the caller does not belong to (the
/// same answer, so existence is not leaked).
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct NotFound(pub Problem);

/// `conflict`: the request contradicts the current state.
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct Conflict(pub Problem);

/// `gone`: the resource existed and is no longer usable (e.g. an invitation expired, revoked,
/// replaced or used).
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct Gone(pub Problem);

/// `payload_too_large`: the body is larger than 1 MiB.
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct PayloadTooLarge(pub Problem);

/// `unsupported_media_type`: the body must be JSON (`Content-Type: application/json`).
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct UnsupportedMediaType(pub Problem);

/// `validation_failed`: a field is missing or wrong; `field` names it.
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct ValidationFailed(pub Problem);

/// `internal`: something failed on the server's side; the `X-Request-Id` identifies it in the
/// logs.
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct Internal(pub Problem);

/// `not_ready`: the control database does not answer.
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct NotReady(pub Problem);

/// `not_found`: the caller is not a platform admin (signed in or not, or with an invalid token:
/// to anyone else the admin routes do not exist), or no tenant has this id or slug.
#[derive(ToResponse)]
#[response(content_type = PROBLEM)]
pub struct NotAdmin(pub Problem);

/// `rate_limited`: the organization's `api_requests_per_minute` is spent (for every instance of
/// the server together when they share a Redis). Admitted requests carry the same `RateLimit-*`
/// headers.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM,
    headers(
        ("Retry-After" = u64, description = "Seconds until a request is admitted again"),
        ("RateLimit-Limit" = u32, description = "The organization's budget: requests per minute"),
        ("RateLimit-Remaining" = u32, description = "Requests admitted right now, back to back (0 here)"),
        ("RateLimit-Reset" = u64, description = "Seconds until the whole budget is available again"),
    )
)]
pub struct RateLimited(pub Problem);

/// The errors of a route taking a JSON body (`ApiJson`). List it before the operation's own
/// responses: a later entry for the same status replaces it.
#[derive(IntoResponses)]
pub enum JsonBody {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 413)]
    PayloadTooLarge(#[ref_response] PayloadTooLarge),
    #[response(status = 415)]
    UnsupportedMediaType(#[ref_response] UnsupportedMediaType),
    #[response(status = 422)]
    ValidationFailed(#[ref_response] ValidationFailed),
    #[response(status = 500)]
    Internal(#[ref_response] Internal),
}

/// The errors of a route for a signed-in user (`AuthUser`).
#[derive(IntoResponses)]
pub enum SignedIn {
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 500)]
    Internal(#[ref_response] Internal),
}

/// The errors of a tenant-scoped route (`TenantScope`).
#[derive(IntoResponses)]
pub enum InTenant {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 429)]
    RateLimited(#[ref_response] RateLimited),
    #[response(status = 500)]
    Internal(#[ref_response] Internal),
}

/// The errors of a platform admin route: anyone but a platform admin is answered 404, as if the
/// route did not exist (never 401 or 403).
#[derive(IntoResponses)]
pub enum AdminOnly {
    #[response(status = 404)]
    NotAdmin(#[ref_response] NotAdmin),
    #[response(status = 500)]
    Internal(#[ref_response] Internal),
}

pub mod schemas {
    //! Schemas of types that other crates define without deriving `ToSchema` (or that handlers
    //! build as JSON). Each mirrors the real type's serialized fields; the API tests compare
    //! real responses with them.

    use std::borrow::Cow;
    use std::collections::HashMap;

    use chrono::{DateTime, Utc};
    use tenantry_orgs::Role;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::{PartialSchema, ToSchema};
    use uuid::Uuid;

    fn text_enum(description: &str, values: Vec<&'static str>) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .enum_values(Some(values))
            .into()
    }

    /// Where an organization's rows live.
    pub struct Isolation;

    impl PartialSchema for Isolation {
        fn schema() -> RefOr<Schema> {
            text_enum(
                "Where the organization's rows live: `shared` (a shared schema, row-level \
                 security), `schema` (its own schema) or `database` (its own database).",
                tenantry_tenancy::Isolation::ALL
                    .iter()
                    .map(|i| i.as_str())
                    .collect(),
            )
        }
    }

    impl ToSchema for Isolation {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Isolation")
        }
    }

    /// An organization's lifecycle state.
    pub struct TenantStatus;

    impl PartialSchema for TenantStatus {
        fn schema() -> RefOr<Schema> {
            text_enum(
                "The organization's lifecycle state; only `active` organizations can be used.",
                tenantry_tenancy::TenantStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect(),
            )
        }
    }

    impl ToSchema for TenantStatus {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("TenantStatus")
        }
    }

    /// An organization as its members see it (`tenantry_orgs::OrgSummary`).
    #[derive(ToSchema)]
    pub struct OrgSummary {
        pub id: Uuid,
        /// Unique, lowercase; usable instead of the id in paths and `X-Tenant`.
        pub slug: String,
        pub name: String,
        /// `free`, `pro` or `enterprise`.
        pub plan: String,
        pub isolation: Isolation,
        pub status: TenantStatus,
        /// The caller's role in it.
        pub role: Role,
        pub logo_url: Option<String>,
        pub billing_email: Option<String>,
        /// The organization's own settings, as it stored them.
        pub settings: serde_json::Value,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    /// An organization with what its plan allows (`tenantry_orgs::OrgDetails`).
    #[derive(ToSchema)]
    pub struct OrgDetails {
        #[serde(flatten)]
        pub summary: OrgSummary,
        pub limits: Limits,
        /// The effective feature flags, e.g. `status_pages`, `agents`.
        pub features: HashMap<String, bool>,
    }

    /// An object with every limit key as an optional property, each a whole number or `null`.
    fn limits_object(description: &str) -> RefOr<Schema> {
        let unlimited = || SchemaType::from_iter([Type::Integer, Type::Null]);
        tenantry_orgs::LIMIT_KEYS
            .iter()
            .fold(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some(description)),
                |object, key| object.property(*key, ObjectBuilder::new().schema_type(unlimited())),
            )
            .into()
    }

    /// The effective limits: the plan's, overridden key by key by the organization's own.
    pub struct Limits;

    impl PartialSchema for Limits {
        fn schema() -> RefOr<Schema> {
            limits_object(
                "The effective limits, the plan's overridden key by key; `null` means unlimited.",
            )
        }
    }

    impl ToSchema for Limits {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Limits")
        }
    }

    /// An organization's own limits, each replacing its plan's (`null`: unlimited); keys absent
    /// here are the plan's.
    pub struct LimitOverrides;

    impl PartialSchema for LimitOverrides {
        fn schema() -> RefOr<Schema> {
            limits_object(
                "Limits replacing the plan's key by key; `null` means unlimited. Keys absent here \
                 are the plan's.",
            )
        }
    }

    impl ToSchema for LimitOverrides {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("LimitOverrides")
        }
    }

    /// The last provisioning step a tenant completed.
    pub struct ProvisionStep;

    impl PartialSchema for ProvisionStep {
        fn schema() -> RefOr<Schema> {
            text_enum(
                "The last provisioning step completed, in order; `activated` when provisioning \
                 is done.",
                tenantry_tenancy::ProvisionStep::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect(),
            )
        }
    }

    impl ToSchema for ProvisionStep {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("ProvisionStep")
        }
    }

    /// What an organization may do: its plan, the effective limits and features, and its own
    /// overrides (`tenantry_orgs::Entitlements`).
    #[derive(ToSchema)]
    pub struct Entitlements {
        /// The plan's name, e.g. `free`, `pro`, `enterprise`.
        pub plan: String,
        pub limits: Limits,
        /// The effective feature flags (the plan's, overridden key by key), e.g. `agents`.
        pub features: HashMap<String, bool>,
        pub overrides: Overrides,
    }

    /// The organization's own values, which replace its plan's key by key
    /// (`tenantry_orgs::Overrides`).
    #[derive(ToSchema)]
    pub struct Overrides {
        pub limits: LimitOverrides,
        /// Feature flags replacing the plan's.
        pub features: HashMap<String, bool>,
    }

    /// A change of plan and overrides (`tenantry_orgs::EntitlementChange`); absent parts stay as
    /// they are, and the given limits and features merge into the existing overrides key by key.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct EntitlementChange {
        /// A plan's name.
        #[schema(example = "pro")]
        pub plan: Option<String>,
        /// Limits to override (`null`: unlimited); only the keys of `Limits`, whole numbers ≥ 0.
        pub limits: Option<LimitOverrides>,
        /// Feature flags to override: snake_case names, `true` or `false`.
        pub features: Option<HashMap<String, bool>>,
    }

    /// An invitation as admins see it, never with its token (`tenantry_orgs::Invitation`).
    #[derive(ToSchema)]
    pub struct Invitation {
        pub id: Uuid,
        /// The organization it invites to.
        pub org_id: Uuid,
        /// The invited address; accepting needs an account with it.
        pub email: String,
        /// The role the invited person gets.
        pub role: Role,
        /// The user who invited, when known.
        pub invited_by: Option<Uuid>,
        pub created_at: DateTime<Utc>,
        /// When the current token was sent (the last resend).
        pub sent_at: DateTime<Utc>,
        /// After this, the token is `gone`; resending makes a new one.
        pub expires_at: DateTime<Utc>,
    }

    /// What an invitation token invites to (`tenantry_orgs::InvitationPreview`).
    #[derive(ToSchema)]
    pub struct InvitationPreview {
        pub organization: PreviewOrg,
        /// The invited address.
        pub email: String,
        /// The role the invited person gets.
        pub role: Role,
        pub expires_at: DateTime<Utc>,
    }

    /// The organization an invitation is to (`tenantry_orgs::PreviewOrg`).
    #[derive(ToSchema)]
    pub struct PreviewOrg {
        pub id: Uuid,
        pub name: String,
        pub slug: String,
    }

    /// A user's membership of an organization (`tenantry_orgs::Membership`).
    #[derive(ToSchema)]
    pub struct Membership {
        pub org_id: Uuid,
        pub user_id: Uuid,
        pub role: Role,
        pub joined_at: DateTime<Utc>,
    }

    /// A change to an organization's profile (`tenantry_orgs::ProfileChange`); absent fields
    /// stay as they are.
    #[derive(ToSchema)]
    pub struct ProfileChange {
        pub name: Option<String>,
        pub slug: Option<String>,
        /// An http(s) URL; `""` removes the logo.
        pub logo_url: Option<String>,
        /// An email address; `""` removes it.
        pub billing_email: Option<String>,
        /// Replaces the organization's settings object.
        pub settings: Option<serde_json::Value>,
    }

    /// A member of an organization (`tenantry_orgs::Member`).
    #[derive(ToSchema)]
    pub struct Member {
        pub user_id: Uuid,
        pub email: String,
        pub name: String,
        pub role: Role,
        pub joined_at: DateTime<Utc>,
    }

    /// An API key as lists show it, never with its secret (`tenantry_orgs::ApiKey`).
    #[derive(ToSchema)]
    pub struct ApiKey {
        pub id: Uuid,
        pub name: String,
        /// The secret's first characters, to recognise it.
        pub prefix: String,
        /// What the key may do; never above its maker's role.
        pub role: Role,
        /// The user who made it.
        pub created_by: Option<Uuid>,
        pub created_at: DateTime<Utc>,
        pub last_used_at: Option<DateTime<Utc>>,
        /// The key's own rate limit, requests per minute, on top of the organization's;
        /// `null`: only the organization's budget applies.
        #[schema(minimum = 1)]
        pub requests_per_minute: Option<i32>,
    }

    /// A key just made, with its secret (`tenantry_orgs::NewKey`).
    #[derive(ToSchema)]
    pub struct NewKey {
        #[serde(flatten)]
        pub key: ApiKey,
        /// `tnt_…`: send it as `Authorization: Bearer <secret>`. Shown in this response only.
        pub secret: String,
    }

    /// The public keys that verify access tokens (RFC 7517).
    #[derive(ToSchema)]
    pub struct Jwks {
        pub keys: Vec<Jwk>,
    }

    /// An Ed25519 public key.
    #[derive(ToSchema)]
    pub struct Jwk {
        /// `OKP`.
        pub kty: String,
        /// `Ed25519`.
        pub crv: String,
        /// `EdDSA`.
        pub alg: String,
        /// `sig`.
        #[schema(rename = "use")]
        pub use_: String,
        /// The key id, named in access tokens' `kid` header.
        pub kid: String,
        /// The public key, base64url without padding.
        pub x: String,
    }
}
