//! A simulated fleet: bots of on-demand sessions (with messages when
//! channels are asked for), and the configuration that syncs it. `bench
//! --bots` runs it in its own process; `simulate --fleet` serves it alone,
//! so the syncing process can be measured apart from the simulator.

use crate::sim::{SimApp, SimBot, SimSettings, Simulator, Synthetic};
use chrono::{DateTime, Utc};
use std::net::SocketAddr;
use std::path::Path;

/// The fleet's shape, and how its syncing is configured.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub n_bots: u32,
    /// Sessions of each bot, evenly spread over `[from, to)`.
    pub per_bot: u64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Requests per minute per bot, enforced by the simulator and set in
    /// the client (per hour: 30 times that); None: no limit.
    pub rate_limit: Option<u32>,
    /// Message channels per bot: messages on, the four the synthetic
    /// sessions use and more named ones up to this many (0: messages off).
    pub channels: u32,
    /// The largest page the simulated server returns.
    pub server_page_limit: u32,
    /// `api.page_size`, `api.max_page_size`, `sync.window`.
    pub page_size: u32,
    pub max_page_size: u32,
    pub window: String,
    /// NLU analytics and LLM usage synced too (`[analytics] enabled`):
    /// seven more streams a bot, served from the same sessions.
    pub analytics: bool,
}

/// The simulator's seed.
pub const SEED: u64 = 7;

impl Fleet {
    pub fn bots(&self) -> Vec<SimBot> {
        (1..=self.n_bots)
            .map(|i| SimBot {
                id: format!("st-bench-{i}"),
                app: SimApp {
                    client_id: format!("cs-bench-{i}"),
                    client_secret: format!("bench-secret-{i}"),
                },
            })
            .collect()
    }

    pub fn synthetic(&self) -> Synthetic {
        Synthetic {
            per_bot: self.per_bot,
            from: self.from,
            to: self.to,
            with_messages: self.channels > 0,
        }
    }

    /// Starts the simulator serving the fleet on `listen`.
    pub async fn serve(&self, listen: SocketAddr) -> anyhow::Result<Simulator> {
        let settings = SimSettings {
            bots: self.bots(),
            synthetic: Some(self.synthetic()),
            max_page_size: self.server_page_limit as usize,
            rate_limit: self.rate_limit.map(|r| (r, r * 30)),
            seed: SEED,
            // Its records never change once it runs.
            memoize_windows: true,
            ..SimSettings::default()
        };
        Ok(Simulator::start(listen, settings, Vec::new()).await?)
    }

    /// The configuration that syncs the fleet from `base_url` into
    /// `warehouse`.
    pub fn config_toml(&self, base_url: &str, warehouse: &Path) -> String {
        let per_minute = self.rate_limit.unwrap_or(0);
        let mut toml = format!(
            "[api]\nbase_url = {:?}\npage_size = {}\nmax_page_size = {}\nrequests_per_minute = {}\nrequests_per_hour = {}\n\
             [warehouse]\npath = {:?}\npublish = false\n[sync]\nstart = {:?}\nlag = \"0s\"\nlookback = \"1h\"\nwindow = {:?}\n",
            base_url,
            self.page_size,
            self.max_page_size,
            per_minute,
            per_minute * 30,
            warehouse.display().to_string(),
            self.from.to_rfc3339(),
            self.window
        );
        if self.channels > 0 {
            let named = (4..self.channels).map(|i| format!("\"channel-{i}\""));
            let channels: Vec<String> = ["rtm", "msteams", "slack", "korevg"]
                .iter()
                .map(|c| format!("{c:?}"))
                .chain(named)
                .collect();
            toml.push_str(&format!(
                "[messages]\nenabled = true\nchannels = [{}]\n",
                channels.join(", ")
            ));
        }
        if self.analytics {
            toml.push_str("[analytics]\nenabled = true\n");
        }
        for b in self.bots() {
            toml.push_str(&format!(
                "[[bots]]\nid = {:?}\nclient_id = {:?}\nclient_secret = {:?}\n",
                b.id, b.app.client_id, b.app.client_secret
            ));
        }
        toml
    }
}
