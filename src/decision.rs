//! Which launches a request matches and whether each one shadows it.
//!
//! Order for a matching launch: loop prevention (the request carries the
//! shadow header), Upgrade/CONNECT requests, `flag_header: off`,
//! `users.never`, forcing (flag header or `users.always`), sticky or random
//! sampling; then method safety and a declared body size over the limit.
//! Limits, the breaker and a streamed body over the limit are checked later,
//! by the engine, when the shadow call is about to leave.
//!
//! Sticky sampling is flagd-compatible: with a sticky key value `v`, the
//! request is shadowed when `murmur3_x86_32(name + v, seed 0) < percent/100 ×
//! 2^32`, so a user gets the same decision on every request, worker and
//! Envoy, and the one flagd's `fractional` gives.

use crate::config::{Config, HeaderRule, KeySource, Launch, PathMatch};
use crate::grpc;
use crate::murmur3;
pub use crate::vocab::SkipReason;

/// The primary request as the filter saw it in the header callback.
/// Header names are lower-case (Envoy normalises them); a name may repeat.
pub struct RequestView<'a> {
    pub method: &'a str,
    /// `:path`, query string included.
    pub path: &'a str,
    /// Borrowed from the host's encoded map: a request no launch shadows
    /// copies nothing.
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> RequestView<'a> {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    fn query(&self) -> Option<&'a str> {
        self.path.split_once('?').map(|(_, q)| q)
    }

    /// Value of a key source, if present and not empty.
    pub fn key(&self, source: &KeySource) -> Option<String> {
        let v = match source {
            KeySource::Header(name) => self
                .header(name)
                .map(|v| String::from_utf8_lossy(v).trim().to_string()),
            KeySource::Cookie(name) => self.cookie(name),
            KeySource::Query(name) => query_param(self.query()?, name),
        };
        v.filter(|s| !s.is_empty())
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == "cookie")
            .flat_map(|(_, v)| v.split(|b| *b == b';'))
            .find_map(|pair| {
                let pair = String::from_utf8_lossy(pair);
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
            })
    }
}

/// The first value of query parameter `name`, decoded as browsers encode
/// form queries (`+` is a space, `%XX` a byte).
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| (k == name).then(|| v.into_owned()))
}

/// A `:path` without its query string.
pub fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// What the flag header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    Absent,
    Off,
    On,
    /// Force only the launch with this (lower-cased) name.
    Launch(String),
}

pub fn read_flag(cfg: &Config, req: &RequestView) -> Flag {
    match req.header(&cfg.flag_header) {
        None => Flag::Absent,
        Some(v) => {
            let v = String::from_utf8_lossy(v).trim().to_ascii_lowercase();
            match v.as_str() {
                "" => Flag::Absent,
                "off" => Flag::Off,
                "on" => Flag::On,
                _ => Flag::Launch(v),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Shadow { forced: bool },
    Skip(SkipReason),
}

/// Does the request fall under the launch's `match`?
pub fn matches(launch: &Launch, req: &RequestView) -> bool {
    matches_request_line(launch, req.method, req.path)
        && grpc_fits(launch, req)
        && launch
            .headers
            .iter()
            .all(|h| match (&h.rule, req.header(&h.name)) {
                (HeaderRule::Exact(want), Some(got)) => got == want.as_bytes(),
                (HeaderRule::Exact(_), None) => false,
                (HeaderRule::Present(want), got) => *want == got.is_some(),
            })
}

/// A gRPC launch takes only gRPC calls; any other launch never takes one
/// (they are POSTs that may change state: naming the method is the opt-in).
fn grpc_fits(launch: &Launch, req: &RequestView) -> bool {
    let content_type = req.header("content-type").unwrap_or_default();
    if launch.grpc_methods.is_empty() {
        !grpc::is_grpc_family(content_type)
    } else {
        grpc::is_grpc(content_type)
    }
}

/// The method and path part of `match` (`path` may carry a query string).
/// Lets the filter turn away most requests before copying any header.
pub fn matches_request_line(launch: &Launch, method: &str, path: &str) -> bool {
    if !launch.grpc_methods.is_empty() {
        let path = path_only(path);
        return method == "POST" && launch.grpc_methods.iter().any(|m| m.matches(path));
    }
    if !launch.methods.is_empty() && !launch.methods.iter().any(|m| m == method) {
        return false;
    }
    let path = path_only(path);
    match &launch.path {
        PathMatch::Any => true,
        PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        PathMatch::Exact(p) => path == p,
        PathMatch::Template(segs) => {
            let Some(rest) = path.strip_prefix('/') else {
                return false;
            };
            let mut parts = rest.split('/');
            segs.iter().all(|seg| match (seg, parts.next()) {
                (Some(lit), Some(part)) => lit == part,
                (None, Some(part)) => !part.is_empty(),
                _ => false,
            }) && parts.next().is_none()
        }
    }
}

/// Methods shadowed when `unsafe_methods` is false: they have no side effects.
pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// Decide for a request that matched `launch`. `random` is called only when
/// sampling needs a random number (no sticky key present).
pub fn decide(
    cfg: &Config,
    launch: &Launch,
    req: &RequestView,
    flag: &Flag,
    random: &mut dyn FnMut() -> u32,
) -> Decision {
    if req.header(&cfg.shadow_header).is_some() {
        return Decision::Skip(SkipReason::Loop);
    }
    if is_upgrade(req) {
        return Decision::Skip(SkipReason::Upgrade);
    }
    if *flag == Flag::Off {
        return Decision::Skip(SkipReason::FlagOff);
    }
    let user = launch
        .users
        .as_ref()
        .and_then(|u| req.key(&u.key).map(|k| (u, k)));
    if let Some((u, id)) = &user {
        if u.never.contains(id) {
            return Decision::Skip(SkipReason::UserNever);
        }
    }
    let forced = match flag {
        Flag::On => true,
        Flag::Launch(name) => *name == launch.name,
        _ => false,
    } || user.as_ref().is_some_and(|(u, id)| u.always.contains(id));

    if !forced && !sampled(launch, req, random) {
        return Decision::Skip(SkipReason::SampledOut);
    }
    // Naming a gRPC method is the opt-in to shadowing its calls.
    if !launch.unsafe_methods && launch.grpc_methods.is_empty() && !is_safe_method(req.method) {
        return Decision::Skip(SkipReason::UnsafeMethod);
    }
    if declared_body_len(req).is_some_and(|n| n > launch.max_body_bytes as u64) {
        return Decision::Skip(SkipReason::BodyTooLarge);
    }
    Decision::Shadow { forced }
}

/// A WebSocket (or other) upgrade, or a CONNECT tunnel: its "body" is the
/// tunnel's bytes for as long as it stays open, nothing a copy can replay.
fn is_upgrade(req: &RequestView) -> bool {
    req.method == "CONNECT" || req.header("upgrade").is_some_and(|v| !v.is_empty())
}

fn sampled(launch: &Launch, req: &RequestView, random: &mut dyn FnMut() -> u32) -> bool {
    let p = launch.sample_percent;
    if p >= 100.0 {
        return true;
    }
    if p <= 0.0 {
        return false;
    }
    match launch.sticky_key.iter().find_map(|s| req.key(s)) {
        Some(value) => murmur3::in_sample(&launch.name, &value, p),
        None => murmur3::in_percent(random(), p),
    }
}

fn declared_body_len(req: &RequestView) -> Option<u64> {
    req.header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn cfg(launch_extra: &str) -> Config {
        let sample = if launch_extra.contains("\"sample\"") {
            ""
        } else {
            r#","sample":{"percent":100}"#
        };
        let s = format!(
            r#"{{"launches":[{{"name":"orders-v2","dark_cluster":"c"{sample}{launch_extra}}}]}}"#
        );
        config::parse(s.as_bytes()).unwrap()
    }

    fn hdrs<'a>(list: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        list.iter().map(|(k, v)| (*k, v.as_bytes())).collect()
    }

    fn run(c: &Config, method: &str, path: &str, h: &[(&str, &str)]) -> Option<Decision> {
        let headers = hdrs(h);
        let req = RequestView {
            method,
            path,
            headers: &headers,
        };
        let l = &c.launches[0];
        if !matches(l, &req) {
            return None;
        }
        let flag = read_flag(c, &req);
        Some(decide(c, l, &req, &flag, &mut || 0))
    }

    const SHADOW: Option<Decision> = Some(Decision::Shadow { forced: false });
    const FORCED: Option<Decision> = Some(Decision::Shadow { forced: true });

    #[test]
    fn grpc_calls_only_by_name() {
        let grpc = [("content-type", "application/grpc")];
        let c = cfg(r#","match":{"grpc_methods":["pkg.Svc/Get","other.Svc/*"]}"#);
        assert_eq!(run(&c, "POST", "/pkg.Svc/Get", &grpc), SHADOW);
        assert_eq!(run(&c, "POST", "/other.Svc/Any", &grpc), SHADOW);
        assert_eq!(run(&c, "POST", "/pkg.Svc/Put", &grpc), None);
        assert_eq!(run(&c, "POST", "/pkg.Svc/Get/x", &grpc), None);
        assert_eq!(run(&c, "POST", "/other.Svc/", &grpc), None);
        assert_eq!(run(&c, "GET", "/pkg.Svc/Get", &grpc), None);
        // Not a gRPC call (gRPC-Web is not one either).
        assert_eq!(run(&c, "POST", "/pkg.Svc/Get", &[]), None);
        let web = [("content-type", "application/grpc-web")];
        assert_eq!(run(&c, "POST", "/pkg.Svc/Get", &web), None);
        // A launch without grpc_methods never takes a gRPC call.
        let c = cfg(r#","unsafe_methods":true"#);
        assert_eq!(run(&c, "POST", "/pkg.Svc/Get", &grpc), None);
        assert_eq!(run(&c, "POST", "/pkg.Svc/Get", &web), None);
        assert_eq!(run(&c, "POST", "/pkg.Svc/Get", &[]), SHADOW);
    }

    #[test]
    fn path_forms() {
        let c = cfg(r#","match":{"path_prefix":"/api"}"#);
        assert_eq!(run(&c, "GET", "/api/x?q=1", &[]), SHADOW);
        assert_eq!(run(&c, "GET", "/other", &[]), None);
        let c = cfg(r#","match":{"path_exact":"/api"}"#);
        assert_eq!(run(&c, "GET", "/api?x=/y", &[]), SHADOW);
        assert_eq!(run(&c, "GET", "/api/", &[]), None);
        let c = cfg(r#","match":{"path_template":"/users/{id}/orders"}"#);
        assert_eq!(run(&c, "GET", "/users/42/orders?a=b", &[]), SHADOW);
        assert_eq!(run(&c, "GET", "/users//orders", &[]), None);
        assert_eq!(run(&c, "GET", "/users/42/orders/1", &[]), None);
        assert_eq!(run(&c, "GET", "/users/42", &[]), None);
    }

    #[test]
    fn methods_and_headers() {
        let c = cfg(
            r#","match":{"methods":["GET"],"headers":[{"name":"X-Tenant","exact":"acme"},{"name":"x-beta","present":true},{"name":"x-no","present":false}]}"#,
        );
        let ok = [("x-tenant", "acme"), ("x-beta", "")];
        assert_eq!(run(&c, "GET", "/", &ok), SHADOW);
        assert_eq!(run(&c, "POST", "/", &ok), None);
        assert_eq!(run(&c, "GET", "/", &[("x-tenant", "acme")]), None);
        assert_eq!(
            run(&c, "GET", "/", &[("x-tenant", "other"), ("x-beta", "1")]),
            None
        );
        assert_eq!(
            run(
                &c,
                "GET",
                "/",
                &[("x-tenant", "acme"), ("x-beta", "1"), ("x-no", "1")]
            ),
            None
        );
    }

    #[test]
    fn order_of_rules() {
        let c = cfg(r#","users":{"key":"header:x-user","always":["qa"],"never":["vip"]}"#);
        assert_eq!(
            run(&c, "GET", "/", &[("x-darklaunch-shadow", "x")]),
            Some(Decision::Skip(SkipReason::Loop))
        );
        assert_eq!(
            run(
                &c,
                "GET",
                "/",
                &[("x-dark-launch", "OFF"), ("x-user", "qa")]
            ),
            Some(Decision::Skip(SkipReason::FlagOff))
        );
        assert_eq!(
            run(
                &c,
                "GET",
                "/",
                &[("x-dark-launch", "on"), ("x-user", "vip")]
            ),
            Some(Decision::Skip(SkipReason::UserNever))
        );
        assert_eq!(run(&c, "GET", "/", &[("x-user", "qa")]), FORCED);
        assert_eq!(
            run(&c, "POST", "/", &[("x-user", "qa")]),
            Some(Decision::Skip(SkipReason::UnsafeMethod))
        );
    }

    #[test]
    fn flag_forces_past_sampling() {
        let c = cfg("").launches[0].clone();
        let mut zero = cfg("");
        zero.launches[0] = Launch {
            sample_percent: 0.0,
            ..c
        };
        let c = zero;
        assert_eq!(
            run(&c, "GET", "/", &[]),
            Some(Decision::Skip(SkipReason::SampledOut))
        );
        assert_eq!(run(&c, "GET", "/", &[("x-dark-launch", "On")]), FORCED);
        assert_eq!(
            run(&c, "GET", "/", &[("x-dark-launch", "ORDERS-V2")]),
            FORCED
        );
        assert_eq!(
            run(&c, "GET", "/", &[("x-dark-launch", "other")]),
            Some(Decision::Skip(SkipReason::SampledOut))
        );
        assert_eq!(
            run(&c, "DELETE", "/", &[("x-dark-launch", "on")]),
            Some(Decision::Skip(SkipReason::UnsafeMethod))
        );
    }

    #[test]
    fn unsafe_methods_allowed_and_body_limit() {
        let c = cfg(r#","unsafe_methods":true,"max_body_bytes":10"#);
        assert_eq!(run(&c, "POST", "/", &[("content-length", "10")]), SHADOW);
        assert_eq!(
            run(&c, "POST", "/", &[("content-length", "11")]),
            Some(Decision::Skip(SkipReason::BodyTooLarge))
        );
    }

    #[test]
    fn sticky_sampling_uses_first_present_key() {
        let c = cfg(
            r#","sample":{"percent":30,"sticky_key":["header:x-user-id","cookie:session","query:u"]}"#,
        )
        .launches
        .remove(0);
        let c2 = Config {
            flag_header: "x-dark-launch".into(),
            shadow_header: "x-darklaunch-shadow".into(),
            mismatch_log_per_minute: 60,
            launches: vec![c],
        };
        let l = &c2.launches[0];
        let mut panic_rng = || -> u32 { unreachable!("sticky key present") };
        for i in 0..200 {
            let user = format!("user-{i}");
            let want = murmur3::in_sample("orders-v2", &user, 30.0);
            let via_header = hdrs(&[("x-user-id", &user)]);
            let cookie = format!("a=b; session={user}; c=d");
            let via_cookie = hdrs(&[("cookie", &cookie)]);
            for (path, headers) in [
                ("/", &via_header),
                ("/", &via_cookie),
                (&*format!("/p?x=1&u={user}"), &hdrs(&[])),
            ] {
                let req = RequestView {
                    method: "GET",
                    path,
                    headers,
                };
                let got = decide(&c2, l, &req, &Flag::Absent, &mut panic_rng);
                assert_eq!(
                    got == Decision::Shadow { forced: false },
                    want,
                    "{user} {path}"
                );
            }
        }
    }

    #[test]
    fn random_sampling_without_key() {
        let mut c = cfg("");
        c.launches[0].sample_percent = 25.0;
        let l = &c.launches[0];
        let headers = hdrs(&[]);
        let req = RequestView {
            method: "GET",
            path: "/",
            headers: &headers,
        };
        let quarter = (u32::MAX / 4) as u64;
        let d = |r: u64| decide(&c, l, &req, &Flag::Absent, &mut || r as u32);
        assert_eq!(d(0), Decision::Shadow { forced: false });
        assert_eq!(d(quarter - 1), Decision::Shadow { forced: false });
        assert_eq!(d(quarter + 2), Decision::Skip(SkipReason::SampledOut));
    }

    #[test]
    fn key_sources() {
        let headers = hdrs(&[("cookie", "a=1"), ("cookie", "sid=\"x y\"")]);
        let req = RequestView {
            method: "GET",
            path: "/p?u=a%40b+c&v",
            headers: &headers,
        };
        assert_eq!(
            req.key(&KeySource::Cookie("sid".into())).as_deref(),
            Some("x y")
        );
        assert_eq!(
            req.key(&KeySource::Query("u".into())).as_deref(),
            Some("a@b c")
        );
        assert_eq!(req.key(&KeySource::Query("v".into())), None);
        assert_eq!(req.key(&KeySource::Query("w".into())), None);
        assert_eq!(query_param("u=%zz%4", "u").as_deref(), Some("%zz%4"));
        assert_eq!(
            query_param("u=%+5%41", "u").as_deref(),
            Some("% 5A"),
            "a sign is not a hex digit"
        );
        assert_eq!(query_param("a+b=1&u", "a b").as_deref(), Some("1"));
        assert_eq!(query_param("u&u=2", "u").as_deref(), Some(""));
    }

    #[test]
    fn upgrades_and_connect_are_skipped_before_sampling() {
        let c = cfg("");
        let l = &c.launches[0];
        let upgrade = hdrs(&[("upgrade", "websocket")]);
        let req = RequestView {
            method: "GET",
            path: "/ws",
            headers: &upgrade,
        };
        let d = decide(&c, l, &req, &Flag::On, &mut || 0);
        assert_eq!(d, Decision::Skip(SkipReason::Upgrade));
        let req = RequestView {
            method: "CONNECT",
            path: "/",
            headers: &[],
        };
        let d = decide(&c, l, &req, &Flag::Absent, &mut || 0);
        assert_eq!(d, Decision::Skip(SkipReason::Upgrade));
        let empty = hdrs(&[("upgrade", "")]);
        let req = RequestView {
            method: "GET",
            path: "/",
            headers: &empty,
        };
        let d = decide(&c, l, &req, &Flag::Absent, &mut || 0);
        assert_eq!(d, Decision::Shadow { forced: false });
    }
}
