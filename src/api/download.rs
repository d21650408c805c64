//! A bare download: one getSessions page asked for and read whole, its
//! bytes counted and thrown away — no budget, no retries, no parsing. What
//! `kore-sync bench --bare-download` replays a backfill's pages with
//! (through `sync::bare`), so a
//! sync's wall time can be set against the least any client could take to
//! fetch the same bytes over the same keep-alive connection (issue 23).

use super::client::KoreApi;
use super::error::ApiError;
use super::wire::SessionsRequest;
use crate::model::ContainmentType;

impl KoreApi {
    /// Fetches one page of sessions and returns its size in bytes; any
    /// status but 200 is an error.
    pub async fn download_sessions(
        &self,
        containment: Option<ContainmentType>,
        body: &SessionsRequest,
    ) -> Result<usize, ApiError> {
        let transport = |source| ApiError::Transport {
            url: self.url.to_string(),
            source,
        };
        let token = self.token()?;
        let mut resp = self
            .client
            .http
            .post(self.url.clone())
            .query(&body.query_pairs(containment))
            .json(body)
            .header("auth", token.expose())
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let mut n_bytes = 0;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            n_bytes += chunk.len();
        }
        if status != 200 {
            return Err(ApiError::Rejected {
                status,
                message: format!("the bare download got HTTP {status}"),
            });
        }
        Ok(n_bytes)
    }
}
