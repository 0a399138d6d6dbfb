//! Taking a configuration: run it when it is valid; when it is not, refuse
//! it (Envoy then rejects it) or, with `DARKLAUNCH_INVALID_CONFIG=
//! keep_last_good`, keep running the last valid configuration this Envoy
//! process ran (kept in shared data), or pass every request through when
//! there is none. A dark launch must never be the reason a request fails:
//! istiod delivers a WasmPlugin's configuration by ECDS, and a listener
//! whose filter refused its first configuration answers every request with
//! an error, whatever the fail strategy says.
//!
//! The process says once what it runs: one line listing the launches per
//! configuration and process, and while the configuration is invalid one
//! error line naming the field, repeated at most once a minute.

use std::rc::Rc;

use super::{Engine, LaunchState, Runtime};
use crate::config;
use crate::host::{Host, Level};
use crate::limits::cas_update;
use crate::vocab::{MetricKind, CONFIG_INVALID};

/// What to do with an invalid configuration (`DARKLAUNCH_INVALID_CONFIG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidConfig {
    /// Refuse it: Envoy rejects the configuration (the default).
    Refuse,
    /// Log it and keep running the last valid one.
    KeepLastGood,
}

impl InvalidConfig {
    /// The VM environment variable that chooses.
    pub const ENV: &'static str = "DARKLAUNCH_INVALID_CONFIG";

    /// From the variable's value; unset is `refuse`.
    pub fn from_env(value: Option<&str>) -> Result<InvalidConfig, String> {
        match value.map(str::trim) {
            None | Some("") | Some("refuse") => Ok(InvalidConfig::Refuse),
            Some("keep_last_good") => Ok(InvalidConfig::KeepLastGood),
            Some(other) => Err(format!(
                "{}={other:?}: must be refuse or keep_last_good",
                InvalidConfig::ENV
            )),
        }
    }
}

/// What the plugin runs after a configuration was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Configured {
    /// The configuration delivered.
    Valid,
    /// It was invalid: the last valid one.
    LastGood,
    /// It was invalid and there is no valid one: every request passes
    /// through untouched.
    PassThrough,
}

/// How often the error of an invalid configuration is logged again.
const INVALID_LOG_MS: u64 = 60_000;

impl<H: Host> Engine<H> {
    /// Take a plugin configuration delivered to `plugin` (the name that
    /// keeps its last valid configuration apart from other plugins' in
    /// shared data). Err, only under [`InvalidConfig::Refuse`], names the
    /// JSON path of the bad field; Envoy then refuses the configuration.
    pub fn configure(
        &mut self,
        bytes: &[u8],
        policy: InvalidConfig,
        plugin: &str,
    ) -> Result<Configured, String> {
        self.plugin = plugin.to_string();
        let gauge = self
            .host
            .define_metric(MetricKind::Gauge, CONFIG_INVALID)
            .ok();
        let outcome = match self.runtime(bytes) {
            Ok(rt) => {
                self.invalid = None;
                self.keep(bytes);
                self.announce(&rt, "darklaunch: configured");
                self.rt = Some(rt);
                Configured::Valid
            }
            Err(e) if policy == InvalidConfig::Refuse => return Err(e),
            Err(e) => {
                self.invalid = Some(e);
                let last = self.host.shared_get(&self.last_good_key()).ok();
                let outcome = match last.and_then(|(b, _)| b).map(|b| self.runtime(&b)) {
                    Some(Ok(rt)) => {
                        self.announce(&rt, "darklaunch: running the last valid configuration:");
                        self.rt = Some(rt);
                        Configured::LastGood
                    }
                    _ => {
                        self.once(
                            "announced",
                            "darklaunch: no valid configuration yet: every request passes \
                             through untouched",
                        );
                        self.rt = None;
                        Configured::PassThrough
                    }
                };
                self.log_invalid(self.host.now_ms());
                outcome
            }
        };
        if let Some(id) = gauge {
            self.host
                .record(id, u64::from(outcome != Configured::Valid));
        }
        Ok(outcome)
    }

    /// Parse, validate and compile; define the launches' stats.
    fn runtime(&self, bytes: &[u8]) -> Result<Rc<Runtime>, String> {
        let mut cfg = config::parse(bytes).map_err(|e| format!("invalid configuration: {e}"))?;
        let launches = std::mem::take(&mut cfg.launches)
            .into_iter()
            .map(|l| LaunchState::new(&self.host, l).map(Rc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.host.now_ms();
        for l in &launches {
            l.check_expiry(&self.host, now);
        }
        Ok(Rc::new(Runtime { cfg, launches }))
    }

    fn last_good_key(&self) -> String {
        format!("darklaunch.config.{}", self.plugin)
    }

    /// Keep a valid configuration for the workers that get an invalid one
    /// later (unchanged bytes are not written again).
    fn keep(&self, bytes: &[u8]) {
        let _ = cas_update(&self.host, &self.last_good_key(), &mut |cur| {
            ((cur != Some(bytes)).then(|| bytes.to_vec()), ())
        });
    }

    /// One line per process per configuration: the launches loaded.
    fn announce(&self, rt: &Runtime, what: &str) {
        let launches: Vec<String> = rt
            .launches
            .iter()
            .map(|l| {
                let c = &l.cfg;
                let expires = c
                    .expires_ms
                    .map(|t| format!(", expires {}", rfc3339(t)))
                    .unwrap_or_default();
                format!(
                    "{} (dark cluster {}, {}%{expires})",
                    c.name, c.dark_cluster, c.sample_percent
                )
            })
            .collect();
        self.once(
            "announced",
            &format!(
                "{what} {} launches: {}",
                launches.len(),
                launches.join(", ")
            ),
        );
    }

    /// Log `line` at info unless this process already logged it last for
    /// `what` of this plugin.
    fn once(&self, what: &str, line: &str) {
        let key = format!("darklaunch.{what}.{}", self.plugin);
        let new = cas_update(&self.host, &key, &mut |cur| {
            let new = cur != Some(line.as_bytes());
            (new.then(|| line.as_bytes().to_vec()), new)
        });
        if new == Some(true) {
            self.host.log(Level::Info, line);
        }
    }

    /// The error of the invalid configuration this plugin runs without, at
    /// most once a minute for the whole process.
    pub(super) fn log_invalid(&self, now: u64) {
        if let Some(e) = &self.invalid {
            let key = format!("invalid.{}", self.plugin);
            let line = format!(
                "darklaunch: {e}; running {} ({}=keep_last_good)",
                if self.rt.is_some() {
                    "the last valid configuration"
                } else {
                    "no configuration: every request passes through untouched"
                },
                InvalidConfig::ENV
            );
            self.log_every(&key, INVALID_LOG_MS, now, Level::Error, &line);
        }
    }

    /// Log at most once per `period_ms` for the whole process, under `key`.
    pub(super) fn log_every(&self, key: &str, period_ms: u64, now: u64, level: Level, line: &str) {
        let key = format!("darklaunch.logged.{key}");
        let due = cas_update(&self.host, &key, &mut |cur| {
            let last = cur.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
            let due = last.is_none_or(|t| now.saturating_sub(t) >= period_ms);
            (due.then(|| now.to_le_bytes().to_vec()), due)
        });
        if due == Some(true) {
            self.host.log(level, line);
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for ms since the Unix epoch.
pub(super) fn rfc3339_millis(ms: u64) -> String {
    crate::utc::format_millis(ms)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for ms since the Unix epoch.
pub(super) fn rfc3339(ms: u64) -> String {
    crate::utc::format_seconds(ms)
}
