//! Floors and probes of a proxy-wasm filter, for `make bench` and
//! `make bench-hostcalls`. The plugin configuration picks the mode:
//!
//! - anything unrecognised: an empty HTTP filter (bench configuration N);
//!   every stream still gets its HTTP context and callbacks, each returning
//!   `Continue`;
//! - `send:CLUSTER` (configuration M): the least a proxy-wasm filter must do
//!   to send a copy of each request: copy the request headers in the header
//!   callback and `dispatch_http_call` them to CLUSTER, ignoring the answer.
//!   No sampling, no queue, no comparison, no stats. Compared with Envoy's
//!   native mirroring it shows what the host's call mechanism alone costs;
//! - `probe:KIND:N`: the empty filter plus N host calls of one kind in each
//!   request-header callback, so that (probe − empty) ÷ N is the cost of one
//!   call: `pairs` (the request header map), `value` (one request header),
//!   `shared` (a 185-byte shared-data value, like the breaker's), `counter`
//!   (increment a counter), `histogram` (record a value), `time` (the clock).

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { mode: Rc::new(RefCell::new(Mode::Empty)) })
    });
}}

#[derive(Clone)]
enum Mode {
    Empty,
    Send(String),
    Probe(Probe, u32),
}

#[derive(Clone, Copy)]
enum Probe {
    Pairs,
    Value,
    Shared,
    Counter(u32),
    Histogram(u32),
    Time,
}

const SHARED_KEY: &str = "noop-filter.probe";

fn parse_mode(config: &str) -> Option<Mode> {
    if let Some(cluster) = config.strip_prefix("send:") {
        return Some(Mode::Send(cluster.to_string()));
    }
    let (kind, n) = config.strip_prefix("probe:")?.split_once(':')?;
    let probe = match kind {
        "pairs" => Probe::Pairs,
        "value" => Probe::Value,
        "shared" => {
            hostcalls::set_shared_data(SHARED_KEY, Some(&[7u8; 185]), None).ok()?;
            Probe::Shared
        }
        "counter" => Probe::Counter(
            hostcalls::define_metric(MetricType::Counter, "noop_probe_counter").ok()?,
        ),
        "histogram" => Probe::Histogram(
            hostcalls::define_metric(MetricType::Histogram, "noop_probe_histogram").ok()?,
        ),
        "time" => Probe::Time,
        _ => return None,
    };
    Some(Mode::Probe(probe, n.parse().ok()?))
}

struct Root {
    mode: Rc<RefCell<Mode>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let mode = std::str::from_utf8(&config)
            .ok()
            .and_then(parse_mode)
            .unwrap_or(Mode::Empty);
        *self.mode.borrow_mut() = mode;
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match self.mode.borrow().clone() {
            Mode::Empty => Box::new(Noop),
            Mode::Send(cluster) => Box::new(Send { cluster }),
            Mode::Probe(probe, n) => Box::new(ProbeCalls { probe, n }),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {}

struct Send {
    cluster: String,
}

impl Context for Send {}

impl HttpContext for Send {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Ok(headers) = hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            let headers: Vec<(String, String)> = headers
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect();
            let _ = hostcalls::dispatch_http_call(
                &self.cluster,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                None,
                vec![],
                Duration::from_millis(1000),
            );
        }
        Action::Continue
    }
}

struct ProbeCalls {
    probe: Probe,
    n: u32,
}

impl Context for ProbeCalls {}

impl HttpContext for ProbeCalls {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for _ in 0..self.n {
            let _ = match self.probe {
                Probe::Pairs => black_box(hostcalls::get_map_bytes(MapType::HttpRequestHeaders))
                    .map(|_| ()),
                Probe::Value => {
                    black_box(hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":path"))
                        .map(|_| ())
                }
                Probe::Shared => black_box(hostcalls::get_shared_data(SHARED_KEY)).map(|_| ()),
                Probe::Counter(id) => hostcalls::increment_metric(id, 1),
                Probe::Histogram(id) => hostcalls::record_metric(id, 1),
                Probe::Time => black_box(hostcalls::get_current_time()).map(|_| ()),
            };
        }
        Action::Continue
    }
}
