//! Authentication for `getSessions`: the JWT that goes in the `auth` header.
//!
//! kore-sync signs its own HS256 tokens with the app's Client Secret. A fresh
//! token (new `jti`, `iat` now, `exp` a few minutes ahead) is minted for every
//! request: signing costs microseconds, and it satisfies apps with *Enforce
//! JTI* (which may refuse a replayed `jti`) as well as plain apps, so there is
//! no expiry to track and nothing to renew.

use crate::secret::Secret;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// How long a minted token is valid. Short, because each is used once.
pub const TOKEN_LIFETIME_SECS: i64 = 300;

/// The claims Kore.ai reads. `appId` must be spelled exactly so.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    #[serde(rename = "appId")]
    pub app_id: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jti: Option<String>,
}

/// Where a request's token comes from.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// Sign a fresh token per request with the app's client secret.
    ClientSecret {
        client_id: String,
        client_secret: Secret,
    },
    /// A ready JWT from the config, sent as is.
    Token(Secret),
}

impl Credentials {
    /// The value of the `auth` header for the next request.
    pub fn header_value(&self) -> Result<Secret, jsonwebtoken::errors::Error> {
        match self {
            Credentials::Token(t) => Ok(t.clone()),
            Credentials::ClientSecret {
                client_id,
                client_secret,
            } => mint(client_id, client_secret).map(Secret::new),
        }
    }

    /// The Client ID to name in error messages (never the secret).
    pub fn describe(&self) -> String {
        match self {
            Credentials::ClientSecret { client_id, .. } => format!("client_id {client_id:?}"),
            Credentials::Token(_) => "the configured token".to_owned(),
        }
    }
}

/// Signs one HS256 token for `client_id`.
pub fn mint(client_id: &str, secret: &Secret) -> Result<String, jsonwebtoken::errors::Error> {
    let now = Utc::now().timestamp();
    let claims = Claims {
        sub: "kore-sync".to_owned(),
        app_id: client_id.to_owned(),
        iat: now,
        exp: now + TOKEN_LIFETIME_SECS,
        jti: Some(uuid::Uuid::new_v4().to_string()),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn minted_token_verifies_with_the_secret_and_carries_app_id_and_jti() {
        let secret = Secret::new("s3cret");
        let token = mint("cs-123", &secret).unwrap();
        let data = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.claims.app_id, "cs-123");
        assert!(data.claims.exp > data.claims.iat);
        assert!(data.claims.jti.is_some());
        // The claim is spelled exactly `appId` on the wire.
        let raw = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(raw.claims["appId"], "cs-123");
        let wrong = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"other"),
            &Validation::new(Algorithm::HS256),
        );
        assert!(wrong.is_err());
    }

    #[test]
    fn every_token_has_a_fresh_jti() {
        let secret = Secret::new("k");
        let decode = |t: &str| {
            jsonwebtoken::decode::<Claims>(
                t,
                &DecodingKey::from_secret(b"k"),
                &Validation::new(Algorithm::HS256),
            )
            .unwrap()
            .claims
            .jti
        };
        assert_ne!(
            decode(&mint("a", &secret).unwrap()),
            decode(&mint("a", &secret).unwrap())
        );
    }
}
