//! Which cluster the primary route sends a launch's requests to: the inline
//! `route_config` of the HTTP connection manager the filter runs in.

use super::tree::Node;
use darklaunch::check::Path;

/// A virtual host's routes, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub path: RoutePath,
    /// Nothing but the path decides (no header, query, runtime or other
    /// condition): a request it matches never reaches the next routes.
    pub path_only: bool,
    /// `cluster`, or every `weighted_clusters` name; empty for a redirect,
    /// a direct response or a `cluster_header` route.
    pub clusters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoutePath {
    Prefix(String),
    Exact(String),
    /// A regex, a separated prefix, a template, case-insensitive, ...: may
    /// match anything.
    Other,
}

impl RoutePath {
    pub fn describe(&self) -> String {
        match self {
            RoutePath::Prefix(p) => format!("prefix {p:?}"),
            RoutePath::Exact(p) => format!("path {p:?}"),
            RoutePath::Other => "a route".into(),
        }
    }
}

/// The routes of an HttpConnectionManager with an inline `route_config`;
/// `None` for RDS or scoped routes (not in the file).
pub fn virtual_hosts(hcm: &Node) -> Option<Vec<VirtualHost>> {
    let rc = hcm.get("route_config")?;
    Some(
        rc.get("virtual_hosts")
            .map(Node::array)
            .unwrap_or_default()
            .iter()
            .map(|vh| VirtualHost {
                routes: vh
                    .get("routes")
                    .map(Node::array)
                    .unwrap_or_default()
                    .iter()
                    .map(route)
                    .collect(),
            })
            .collect(),
    )
}

fn route(r: &Node) -> Route {
    let m = r.get("match");
    let case_sensitive = m
        .and_then(|m| m.get("case_sensitive"))
        .is_none_or(|c| c.value != super::tree::Kind::Bool(false));
    let path = match (
        m.and_then(|m| m.get_str("prefix")),
        m.and_then(|m| m.get_str("path")),
    ) {
        (Some(p), None) if case_sensitive => RoutePath::Prefix(p.to_string()),
        (None, Some(p)) if case_sensitive => RoutePath::Exact(p.to_string()),
        _ => RoutePath::Other,
    };
    let path_only = path != RoutePath::Other
        && m.is_some_and(|m| match &m.value {
            super::tree::Kind::Object(members) => members
                .iter()
                .all(|(k, _)| matches!(k.as_str(), "prefix" | "path" | "case_sensitive")),
            _ => false,
        });
    let action = r.get("route");
    let mut clusters = Vec::new();
    if let Some(c) = action.and_then(|a| a.get_str("cluster")) {
        clusters.push(c.to_string());
    }
    for w in action
        .and_then(|a| a.get("weighted_clusters"))
        .and_then(|w| w.get("clusters"))
        .map(Node::array)
        .unwrap_or_default()
    {
        if let Some(name) = w.get_str("name") {
            clusters.push(name.to_string());
        }
    }
    Route {
        path,
        path_only,
        clusters,
    }
}

/// The routes that can carry requests of a launch matching `launch`: in
/// each virtual host, every route whose path can overlap the launch's, up
/// to the first that takes all of them.
pub fn carrying<'a>(hosts: &'a [VirtualHost], launch: &Path) -> Vec<&'a Route> {
    let mut out = Vec::new();
    for vh in hosts {
        for r in &vh.routes {
            if overlaps(&r.path, launch) {
                out.push(r);
                if r.path_only && covers(&r.path, launch) {
                    break;
                }
            }
        }
    }
    out
}

/// The literal start of a template's paths: `/users/{id}/x` -> `/users/`.
fn template_prefix(segments: &[Option<String>]) -> String {
    let mut p = String::from("/");
    for s in segments {
        match s {
            Some(lit) => {
                p.push_str(lit);
                p.push('/');
            }
            None => return p,
        }
    }
    p.pop();
    if p.is_empty() {
        p.push('/');
    }
    p
}

fn overlaps(route: &RoutePath, launch: &Path) -> bool {
    match (route, launch) {
        (RoutePath::Other, _) | (_, Path::Any) => true,
        (RoutePath::Prefix(p), Path::Prefix(l)) => l.starts_with(p) || p.starts_with(l.as_str()),
        (RoutePath::Prefix(p), Path::Exact(x)) => x.starts_with(p),
        (RoutePath::Prefix(p), Path::Template(t)) => {
            let l = template_prefix(t);
            l.starts_with(p) || p.starts_with(l.as_str())
        }
        (RoutePath::Exact(e), Path::Prefix(l)) => e.starts_with(l),
        (RoutePath::Exact(e), Path::Exact(x)) => e == x,
        (RoutePath::Exact(e), Path::Template(t)) => {
            let segs: Vec<&str> = e.split('/').skip(1).collect();
            segs.len() == t.len()
                && segs
                    .iter()
                    .zip(t)
                    .all(|(s, want)| want.as_deref().is_none_or(|w| w == *s))
        }
    }
}

/// Every request of the launch matches the route's path.
fn covers(route: &RoutePath, launch: &Path) -> bool {
    match (route, launch) {
        (RoutePath::Prefix(p), Path::Any) => p.is_empty() || p == "/",
        (RoutePath::Prefix(p), Path::Prefix(l)) => l.starts_with(p),
        (RoutePath::Prefix(p), Path::Exact(x)) => x.starts_with(p),
        (RoutePath::Prefix(p), Path::Template(t)) => template_prefix(t).starts_with(p),
        (RoutePath::Exact(e), Path::Exact(x)) => e == x,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(path: RoutePath, cluster: &str) -> Route {
        Route {
            path,
            path_only: true,
            clusters: vec![cluster.into()],
        }
    }

    fn names(routes: Vec<&Route>) -> Vec<&str> {
        routes.iter().map(|r| r.clusters[0].as_str()).collect()
    }

    #[test]
    fn first_covering_route_stops_the_scan() {
        let hosts = [VirtualHost {
            routes: vec![
                r(RoutePath::Prefix("/api/v2".into()), "v2"),
                r(RoutePath::Prefix("/api".into()), "api"),
                r(RoutePath::Prefix("/".into()), "web"),
            ],
        }];
        let p = |s: &str| Path::Prefix(s.into());
        assert_eq!(names(carrying(&hosts, &p("/api/orders"))), ["api"]);
        assert_eq!(names(carrying(&hosts, &p("/api"))), ["v2", "api"]);
        assert_eq!(names(carrying(&hosts, &p("/static"))), ["web"]);
        assert_eq!(names(carrying(&hosts, &Path::Any)), ["v2", "api", "web"]);
        assert_eq!(
            names(carrying(&hosts, &Path::Exact("/api/v2/x".into()))),
            ["v2"]
        );
        let t = Path::Template(vec![Some("api".into()), None]);
        assert_eq!(names(carrying(&hosts, &t)), ["v2", "api"]);
    }

    #[test]
    fn conditions_and_exact_paths() {
        let mut header_route = r(RoutePath::Prefix("/".into()), "canary");
        header_route.path_only = false;
        let hosts = [VirtualHost {
            routes: vec![
                header_route,
                r(RoutePath::Exact("/u/7/orders".into()), "exact"),
                r(RoutePath::Other, "regex"),
                r(RoutePath::Prefix("/".into()), "web"),
            ],
        }];
        let t = Path::Template(vec![Some("u".into()), None, Some("orders".into())]);
        assert_eq!(
            names(carrying(&hosts, &t)),
            ["canary", "exact", "regex", "web"]
        );
        let x = Path::Exact("/u/7/orders".into());
        assert_eq!(names(carrying(&hosts, &x)), ["canary", "exact"]);
        assert_eq!(template_prefix(&[None]), "/");
        assert_eq!(template_prefix(&[Some("a".into())]), "/a");
    }
}
