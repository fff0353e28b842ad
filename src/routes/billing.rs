//! `POST /v1/billing/checkout` and `GET /v1/billing/portal`: links to the billing provider's
//! hosted checkout and customer portal, created through its HTTP API.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::auth::Caller;
use crate::billing::client::{BillingApiError, CheckoutMode, CheckoutRequest, PolarApi, StripeApi};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::state::AppState;

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    /// A product of the plans file (`pro`, `credits-100`, …).
    #[validate(length(min = 1, max = 100))]
    pub product: String,
    /// `polar` or `stripe`; default: the one configured (Polar when both are).
    pub provider: Option<String>,
    #[validate(url)]
    pub success_url: Option<String>,
    #[validate(url)]
    pub cancel_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Link {
    pub provider: &'static str,
    pub url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalParams {
    pub return_url: Option<String>,
}

fn upstream(e: BillingApiError) -> ApiError {
    ApiError::Upstream(format!("the billing provider refused: {e}"))
}

enum Provider {
    Polar(PolarApi),
    Stripe(StripeApi),
}

/// The provider to use: the one asked for, else Polar, else Stripe (409 when none is set up).
fn provider(state: &AppState, asked: Option<&str>) -> Result<Provider, ApiError> {
    let billing = &state.settings.billing;
    let http = state.http.clone();
    let polar = billing.polar_access_token.as_ref().map(|t| {
        Provider::Polar(PolarApi::new(
            http.clone(),
            &billing.polar_base_url,
            t.clone(),
        ))
    });
    let stripe = billing
        .stripe_secret_key
        .as_ref()
        .map(|k| Provider::Stripe(StripeApi::new(http, &billing.stripe_base_url, k.clone())));
    let chosen = match asked {
        None => polar.or(stripe),
        Some("polar") => polar,
        Some("stripe") => stripe,
        Some(_) => return Err(ApiError::invalid_field("provider", "`polar` or `stripe`")),
    };
    chosen.ok_or(ApiError::Conflict {
        code: crate::error::ErrorCode::BillingNotConfigured,
        detail: "no billing provider is configured on this server".into(),
    })
}

fn require_account(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_anonymous() {
        return Err(ApiError::Forbidden {
            code: crate::error::ErrorCode::AccountRequired,
            detail: "billing needs a signed-in account".into(),
        });
    }
    Ok(())
}

pub async fn checkout(
    state: web::Data<AppState>,
    caller: Caller,
    body: ValidJson<Checkout>,
) -> Result<HttpResponse, ApiError> {
    require_account(&caller)?;
    let body = body.0;
    let product = state
        .settings
        .plans
        .product(&body.product)
        .cloned()
        .ok_or_else(|| {
            ApiError::invalid_field("product", format!("unknown product {:?}", body.product))
        })?;
    let mode = if product.credits > 0 {
        CheckoutMode::Payment
    } else {
        CheckoutMode::Subscription
    };
    let request = |product_id| CheckoutRequest {
        product_id,
        mode,
        account_id: caller.id(),
        email: caller.account.email.as_deref(),
        success_url: body.success_url.as_deref(),
        cancel_url: body.cancel_url.as_deref(),
    };
    let missing = |provider: &str| {
        ApiError::invalid_field(
            "product",
            format!("{:?} is not sold through {provider}", product.id),
        )
    };
    let link = match provider(&state, body.provider.as_deref())? {
        Provider::Polar(api) => {
            let id = product
                .polar_product_id
                .as_deref()
                .ok_or_else(|| missing("polar"))?;
            Link {
                provider: "polar",
                url: api.create_checkout(&request(id)).await.map_err(upstream)?,
            }
        }
        Provider::Stripe(api) => {
            let id = product
                .stripe_price_id
                .as_deref()
                .ok_or_else(|| missing("stripe"))?;
            if body.success_url.is_none() {
                return Err(ApiError::invalid_field(
                    "success_url",
                    "Stripe checkouts need a success_url",
                ));
            }
            Link {
                provider: "stripe",
                url: api.create_checkout(&request(id)).await.map_err(upstream)?,
            }
        }
    };
    Ok(HttpResponse::Ok().json(link))
}

pub async fn portal(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<PortalParams>,
) -> Result<HttpResponse, ApiError> {
    require_account(&caller)?;
    let asked = caller.account.billing_provider.as_deref();
    let link = match provider(&state, asked)? {
        Provider::Polar(api) => Link {
            provider: "polar",
            url: api.customer_portal(caller.id()).await.map_err(upstream)?,
        },
        Provider::Stripe(api) => {
            let customer = caller
                .account
                .billing_customer
                .as_deref()
                .ok_or(ApiError::NotFound("billing customer"))?;
            Link {
                provider: "stripe",
                url: api
                    .portal(customer, params.return_url.as_deref())
                    .await
                    .map_err(upstream)?,
            }
        }
    };
    Ok(HttpResponse::Ok().json(link))
}
