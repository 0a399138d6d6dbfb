//! What the engine needs from its host, as one small trait.
//!
//! In Envoy the host is proxy-wasm: `proxy.rs` implements the trait with
//! host calls. In native tests it is `engine::fake`, which records every
//! call. The engine is generic over the trait, so the indirection costs
//! nothing at run time.

use crate::vocab::MetricKind;

/// A host call that did not succeed; the raw proxy-wasm status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

/// The status Envoy answers a call to a cluster it does not know with.
pub const BAD_ARGUMENT: u32 = 2;

/// Log levels, as proxy-wasm numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// Outcome of a compare-and-swap write to shared data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetResult {
    Written,
    /// Another writer got there first: read again.
    CasMismatch,
}

/// The header map the engine reads; each only inside its own callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    Request,
    Response,
    /// The response trailers, inside their callback.
    ResponseTrailers,
    /// The answer to a dispatched call, inside the call's response callback.
    CallResponse,
    /// The trailers of that answer.
    CallTrailers,
}

/// The body the engine reads; each only inside its own callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// The request body chunk of the current callback.
    Request,
    /// The response body chunk of the current callback.
    Response,
    CallResponse,
}

/// An HTTP call to send to a cluster.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub cluster: &'a str,
    /// Pseudo-headers (`:method`, `:path`, `:authority`) included.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub timeout_ms: u32,
}

pub trait Host {
    /// Wall-clock milliseconds since the Unix epoch (0 if unknown).
    fn now_ms(&self) -> u64;
    fn random_u32(&self) -> u32;
    fn log(&self, level: Level, msg: &str);

    /// The id of a stat; the same name always gives the same id.
    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError>;
    /// Add to a counter (`by` > 0) or a gauge (either sign).
    fn increment(&self, id: u32, by: i64);
    /// Set a gauge, or record a histogram value.
    fn record(&self, id: u32, value: u64);

    /// A process-wide shared-data value and its CAS token; `(None, None)`
    /// when absent.
    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError>;
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>)
        -> Result<SetResult, HostError>;

    /// The encoded header map (see `headermap`).
    fn header_map(&self, which: Headers) -> Result<Vec<u8>, HostError>;
    /// Up to `max` bytes of a body from its start; empty when there is none.
    fn body(&self, which: Body, max: usize) -> Result<Vec<u8>, HostError>;

    /// Send a call; its answer comes back through the engine's
    /// `call_response` with the returned token. The engine calls this only
    /// from root-context callbacks.
    fn dispatch(&self, call: Call<'_>) -> Result<u32, HostError>;
    /// Ask for a root-context callback (`Engine::doorbell`) soon, on this
    /// worker.
    fn ring_doorbell(&self) -> Result<(), HostError>;
}
