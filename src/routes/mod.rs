//! HTTP routes. One file per action; [`config`] registers them all from one table, which the
//! OpenAPI drift test compares with `api-spec/openapi.yaml`.

pub mod admin;
pub mod app;
pub mod auth;
pub mod billing;
pub mod chat;
pub mod feed;
pub mod files;
pub mod generations;
pub mod health;
pub mod me;
pub mod models;
pub mod openai;
pub mod search;
pub mod shares;
pub mod threads;

pub mod webhooks;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// Declares every route once: generates [`ROUTES`] (for the drift test) and [`register`].
macro_rules! routes {
    ($( $path:literal => { $( $method:ident : $handler:path ),+ $(,)? } ),+ $(,)?) => {
        /// Every `(METHOD, path)` the server answers.
        pub const ROUTES: &[(&str, &str)] = &[ $( $( (stringify!($method), $path) ),+ ),+ ];

        fn register(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        $( .route(web::$method().to($handler)) )+
                        .default_service(web::to(method_not_allowed)),
                );
            )+
        }
    };
}

routes! {
    "/healthz" => { get: health::healthz },
    "/readyz" => { get: health::readyz },
    "/openapi.json" => { get: health::openapi },
    "/metrics" => { get: health::metrics },
    "/v1/auth/anonymous" => { post: auth::anonymous::handle },
    "/v1/auth/register" => { post: auth::register::handle },
    "/v1/auth/login" => { post: auth::login::handle },
    "/v1/auth/logout" => { post: auth::logout::handle },
    "/v1/me" => { get: me::get::handle, patch: me::update::handle, delete: me::erase::handle },
    "/v1/me/sessions" => { get: me::sessions::list },
    "/v1/me/usage" => { get: me::usage::handle },
    "/v1/me/api-keys" => { get: me::api_keys::list, post: me::api_keys::create },
    "/v1/me/api-keys/{id}" => { delete: me::api_keys::revoke },
    "/v1/me/preferences" => { get: me::preferences::get, patch: me::preferences::patch },
    "/v1/me/sessions/{id}" => { delete: me::sessions::revoke },
    "/v1/chat" => { post: chat::send::handle },
    "/v1/chat/check" => { post: chat::check::handle },
    "/v1/chat/completions" => { post: openai::completions },
    "/v1/chat/{id}/stream" => { get: chat::resume::handle },
    "/v1/chat/{id}/stop" => { post: chat::stop::handle },
    "/v1/events" => { get: feed::handle },
    "/v1/generations/{id}/events" => { get: generations::events::handle },
    "/v1/models" => { get: models::list },
    "/v1/admin/models/{id}" => { get: admin::models::get, put: admin::models::put },
    "/v1/admin/usage" => { get: admin::usage::handle },
    "/v1/admin/audit" => { get: admin::audit::list },
    "/v1/admin/threads/{id}" => { get: admin::threads::get },
    "/v1/admin/mcp-servers" => { get: admin::mcp_servers::list },
    "/v1/admin/mcp-servers/{name}" => {
        put: admin::mcp_servers::put,
        delete: admin::mcp_servers::delete,
    },
    "/v1/admin/mcp-servers/{name}/tools" => { get: admin::mcp_servers::tools },
    "/v1/webhooks/polar" => { post: webhooks::polar },
    "/v1/webhooks/stripe" => { post: webhooks::stripe },
    "/v1/billing/checkout" => { post: billing::checkout },
    "/v1/billing/portal" => { get: billing::portal },
    "/v1/admin/accounts/{id}/ledger" => { get: admin::accounts::ledger },
    "/v1/admin/accounts/{id}/credits" => { post: admin::accounts::grant },
    "/v1/threads" => { get: threads::list::handle, post: threads::create::handle },
    "/v1/threads/{id}" => {
        get: threads::get::handle,
        patch: threads::update::handle,
        delete: threads::delete::handle,
    },
    "/v1/threads/{id}/current" => { put: threads::current::handle },
    "/v1/threads/{id}/messages" => { get: threads::messages::page },
    "/v1/threads/{id}/messages/{message_id}" => { delete: threads::messages::hide },
    "/v1/threads/{id}/branch" => { post: threads::branch::handle },
    "/v1/threads/{id}/shares" => { get: threads::shares::list, post: threads::shares::create },
    "/v1/threads/{id}/typing" => { post: threads::typing::handle },
    "/v1/threads/{id}/export" => { get: threads::export::handle },
    "/v1/me/export" => { get: me::export::handle },
    "/v1/me/import" => { post: me::import::handle },
    "/v1/shares/{id}" => { get: shares::get, delete: shares::revoke },
    "/v1/shares/{id}/copy" => { post: shares::copy },
    "/v1/search" => { get: search::handle },
    "/v1/files" => { get: files::list, post: files::upload },
    "/v1/files/{id}" => { get: files::get, delete: files::delete },
    "/v1/files/{id}/content" => { get: files::content },
}

/// Registers every route, the extractor configs and, when `web_app`, the web app's pages.
pub fn config(cfg: &mut web::ServiceConfig, web_app: bool) {
    cfg.app_data(crate::extract::json_config())
        .app_data(crate::extract::query_config())
        .app_data(crate::extract::path_config());
    register(cfg);
    app::config(cfg, web_app);
}

/// The answer for a path no route matches.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
