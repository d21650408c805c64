//! A scope's credentials, checked: a token, or a client id with a secret
//! given inline or in a file (whose permissions earn a warning when others
//! may read it). A scope without any uses `[api]`'s.

use super::collector::Collector;
use super::raw::RawCredentials;
use crate::api::Credentials;
use crate::secret::Secret;

/// Picks a scope's credentials: its own if it names any, else `[api]`'s.
pub(super) fn credentials(
    key: &str,
    own: &RawCredentials,
    fallback: &RawCredentials,
    p: &mut Collector,
    warnings: &mut Vec<String>,
) -> Option<Credentials> {
    let (src, src_key) = if own.any() {
        (own, key)
    } else {
        (fallback, "api")
    };
    if let Some(token) = &src.token {
        if src.client_secret.is_some() || src.client_secret_file.is_some() {
            return p.push(
                &format!("{src_key}.token"),
                "is set together with a client secret; keep either token or client_id + client_secret".into(),
            );
        }
        return Some(Credentials::Token(Secret::new(token.clone())));
    }
    let secret = match (&src.client_secret, &src.client_secret_file) {
        (Some(_), Some(_)) => {
            return p.push(
                &format!("{src_key}.client_secret_file"),
                "is set together with client_secret; keep only one".into(),
            );
        }
        (Some(s), None) => Some(Secret::new(s.clone())),
        (None, Some(file)) => {
            let key = format!("{src_key}.client_secret_file");
            read_secret_file((&key, "the app's Client Secret"), file, p, warnings)
        }
        (None, None) => None,
    };
    match (&src.client_id, secret) {
        (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.is_empty() => {
            Some(Credentials::ClientSecret {
                client_id: id.trim().to_owned(),
                client_secret: secret,
            })
        }
        (_, Some(s)) if s.is_empty() => None, // reported by read_secret_file or below
        _ => p.push(
            key,
            format!(
                "has no credentials: set client_id and client_secret (or client_secret_file, or token) in [{}] or in [api]; \
                 the Client ID and Secret are on the JWT app with the \"Bot Sessions\" scope",
                if key == "account" {
                    "account".to_owned()
                } else {
                    format!("{key} (a [[bots]] table)")
                }
            ),
        ),
    }
}

/// Reads a secret (`what`, named by the config `key` that points at it)
/// from a file; `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`) may
/// prefix the path.
pub(super) fn read_secret_file(
    (key, what): (&str, &str),
    file: &str,
    p: &mut Collector,
    warnings: &mut Vec<String>,
) -> Option<Secret> {
    let expanded = match std::env::var("CREDENTIALS_DIRECTORY") {
        Ok(dir) => file.replace("$CREDENTIALS_DIRECTORY", &dir),
        Err(_) => file.to_owned(),
    };
    let text = match std::fs::read_to_string(&expanded) {
        Ok(text) => text,
        Err(e) => {
            return p.push(
                key,
                format!("cannot read {expanded:?} ({e}); check the path and that kore-sync's user may read it"),
            );
        }
    };
    let secret = text.trim();
    if secret.is_empty() {
        return p.push(key, format!("{expanded:?} is empty; put {what} in it"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&expanded)
            && meta.permissions().mode() & 0o077 != 0
        {
            warnings.push(format!(
                "{key}: {expanded:?} is readable by group or others; run `chmod 600 {expanded}`"
            ));
        }
    }
    Some(Secret::new(secret))
}
