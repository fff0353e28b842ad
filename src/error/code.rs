//! The closed set of problem `code`s: what a client may branch on. Every code is listed in the
//! OpenAPI document's `Problem.code` enum, and a test checks that the two lists agree.

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $text:literal ),+ $(,)?) => {
        /// A problem's stable, machine-readable `code`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant ),+
        }

        impl ErrorCode {
            /// Every code, in the order of declaration.
            pub const ALL: &[ErrorCode] = &[$( ErrorCode::$variant ),+];

            /// The code as it appears in a problem body.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $text ),+
                }
            }
        }
    };
}

codes! {
    // 400
    /// The body is not syntactically valid JSON.
    InvalidJson = "invalid_json",
    /// The body could not be read to its end (the connection failed mid-body).
    InvalidBody = "invalid_body",
    /// A query parameter has the wrong type.
    InvalidQuery = "invalid_query",
    /// A path parameter could not be read.
    InvalidPath = "invalid_path",
    /// A cursor or part id the server did not issue.
    InvalidCursor = "invalid_cursor",
    /// A signed webhook event whose ordering fields or ids cannot be read.
    UnreadableEvent = "unreadable_event",
    /// `POST /v1/auth/logout` with an API key.
    NotASession = "not_a_session",
    /// A request the HTTP framework refused on its own.
    BadRequest = "bad_request",
    // 401
    /// No valid bearer token.
    Unauthenticated = "unauthenticated",
    /// Login with a wrong email or password.
    InvalidCredentials = "invalid_credentials",
    /// Webhook signature headers are absent.
    SignatureMissing = "signature_missing",
    /// Webhook signature headers are unreadable.
    SignatureMalformed = "signature_malformed",
    /// A webhook's timestamp is outside the tolerance.
    SignatureStale = "signature_stale",
    /// No webhook signature matches the body.
    SignatureMismatch = "signature_mismatch",
    /// An external JWT is not a JWT.
    TokenMalformed = "token_malformed",
    /// An external JWT has expired.
    TokenExpired = "token_expired",
    /// An external JWT is not valid yet.
    TokenNotYetValid = "token_not_yet_valid",
    /// An external JWT's signature does not verify.
    TokenSignatureInvalid = "token_signature_invalid",
    /// An external JWT names a key the identity provider does not publish.
    TokenKeyUnknown = "token_key_unknown",
    /// An external JWT lacks a required claim or has a wrong one.
    TokenClaimInvalid = "token_claim_invalid",
    // 402
    /// The plan has none of this meter.
    PlanRequired = "plan_required",
    // 402 or 403
    /// The model needs a subscription.
    PremiumRequired = "premium_required",
    // 403
    /// An admin route called by an account that is not an admin.
    Forbidden = "forbidden",
    /// An anonymous caller asked for something that needs an account.
    AccountRequired = "account_required",
    /// Sessions and keys are managed with a session, not an API key.
    SessionRequired = "session_required",
    /// Erasing an account needs its password, or a session signed in minutes ago.
    ReauthenticationRequired = "reauthentication_required",
    /// A request authenticated by the session cookie changes something without the
    /// `X-CSRF-Token` header matching the `threadline_csrf` cookie.
    CsrfFailed = "csrf_failed",
    // 404
    /// No such resource for this caller.
    NotFound = "not_found",
    /// No route matches the path.
    RouteNotFound = "route_not_found",
    /// `POST /v1/chat/completions` names a model this server does not offer.
    ModelNotFound = "model_not_found",
    // 405
    /// The path exists, but not with this method.
    MethodNotAllowed = "method_not_allowed",
    // 408
    /// The body did not arrive in time.
    RequestTimeout = "request_timeout",
    // 409
    /// A thread id that is or was taken.
    ThreadExists = "thread_exists",
    /// An email that is registered already.
    EmailTaken = "email_taken",
    /// An account id that exists already.
    AccountExists = "account_exists",
    /// The anonymous account was linked by a concurrent request.
    AlreadyLinked = "already_linked",
    /// The link is not allowed.
    CannotLink = "cannot_link",
    /// Other writers kept winning the race for the same stream.
    ConcurrentUpdate = "concurrent_update",
    /// A purchased-credit balance changed while it was being moved.
    ConcurrentChange = "concurrent_change",
    /// A message id already used with other text.
    MessageExists = "message_exists",
    /// A reply streams in the thread.
    ReplyInProgress = "reply_in_progress",
    /// No reply streams in the thread.
    NoActiveReply = "no_active_reply",
    /// The account holds as many API keys as allowed.
    TooManyApiKeys = "too_many_api_keys",
    /// No billing provider has API credentials.
    BillingNotConfigured = "billing_not_configured",
    /// A webhook delivery that was processed already.
    DeliveryProcessed = "delivery_processed",
    // 411, 413, 414, 415, 431
    /// The framework needs a length.
    LengthRequired = "length_required",
    /// The body is too large.
    PayloadTooLarge = "payload_too_large",
    /// The URI is too long.
    UriTooLong = "uri_too_long",
    /// The body is not sent as JSON.
    UnsupportedMediaType = "unsupported_media_type",
    /// The request's headers are too large.
    HeadersTooLarge = "headers_too_large",
    // 422
    /// The body or a parameter breaks a rule.
    ValidationFailed = "validation_failed",
    /// A message carries a file the chosen model cannot take (an image to a model without
    /// vision); nothing was spent.
    UnsupportedCapability = "unsupported_capability",
    // 429
    /// A rate limit was hit.
    RateLimited = "rate_limited",
    /// A meter's window has no room left.
    QuotaExceeded = "quota_exceeded",
    // 5xx
    /// An upstream service refused or failed.
    UpstreamError = "upstream_error",
    /// A dependency is unavailable.
    Unavailable = "unavailable",
    /// A bug or a corrupt state.
    Internal = "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
