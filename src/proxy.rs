//! The proxy-wasm host (wasm32 only): the engine's `Host` trait implemented
//! with host calls, and the module's entry point.
//!
//! The SDK's `hostcalls::*` return `Result`, but panic on any status they do
//! not expect ("unexpected status: N"), and its map decoder panics on bytes
//! that are not UTF-8. A panic kills the VM (every later request then fails
//! or bypasses the filter, per `failure_policy`), so the host calls go
//! through the small wrappers below: every status is an `Err`, every buffer
//! is parsed with bounds checks. The ABI is the proxy-wasm 0.2.1 one the SDK
//! itself imports; statuses are read as plain integers so that an unknown
//! value can never become an invalid enum. This is the one module allowed
//! `unsafe`.
//!
//! `dispatch_http_call` stays with the SDK: it registers the call's token so
//! that the SDK routes the answer back to the root context. Envoy's
//! `httpCall` returns only Ok, BadArgument or InternalFailure, the statuses
//! the SDK maps to a `Result`.
#![allow(unsafe_code)]
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use proxy_wasm::hostcalls;
use std::ptr::null_mut;

use proxy_wasm::types::{BufferType, MapType, MetricType};

use crate::host::{self, Call, Host, HostError, Level, SetResult};
use crate::vocab::MetricKind;

proxy_wasm::main! {{
    // A panic aborts the VM; say why, at the level operators watch.
    std::panic::set_hook(Box::new(|info| {
        log(Level::Critical, &format!("darklaunch panicked: {info}"));
    }));
    crate::filter::start();
}}

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const CAS_MISMATCH: u32 = 8;
const EMPTY: u32 = 7;

#[allow(clashing_extern_declarations)]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_register_shared_queue(
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
}

fn check(status: u32) -> Result<(), HostError> {
    if status == OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// Take ownership of a buffer the host allocated through the SDK's
/// `proxy_on_memory_allocate` (a `Vec<u8>` with capacity == size).
fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: the host filled memory it obtained from the module's allocator
    // for exactly `size` bytes, and hands its ownership to the caller.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

pub fn log(level: Level, msg: &str) {
    // SAFETY: pointer and length of a live &str.
    let _ = unsafe { proxy_log(level as u32, msg.as_ptr(), msg.len()) };
}

/// Milliseconds since the Unix epoch; 0 if the host will not tell.
fn now_ms() -> u64 {
    let mut t: u64 = 0;
    // SAFETY: `t` outlives the call.
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        OK => t / 1_000_000,
        _ => 0,
    }
}

/// A host property such as `plugin_name`; None when absent or unreadable.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    // The path's segments, NUL-separated.
    let key = path.join("\0");
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: key pointer/length of a live String, out-pointers to locals.
    match unsafe { proxy_get_property(key.as_ptr(), key.len(), &mut data, &mut size) } {
        OK => Some(take(data, size)),
        _ => None,
    }
}

pub fn set_tick_period_ms(ms: u32) -> Result<(), HostError> {
    // SAFETY: plain value call.
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// Up to `max` bytes of a buffer from `start`; empty when there is none.
pub fn buffer(kind: BufferType, start: usize, max: usize) -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals that outlive the call.
    match unsafe { proxy_get_buffer_bytes(kind as u32, start, max, &mut data, &mut size) } {
        OK => Ok(take(data, size)),
        NOT_FOUND => Ok(Vec::new()),
        s => Err(HostError(s)),
    }
}

/// A header map still encoded (read it with `headermap::pairs`).
fn header_map_bytes(kind: MapType) -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals that outlive the call.
    check(unsafe { proxy_get_header_map_pairs(kind as u32, &mut data, &mut size) })?;
    Ok(take(data, size))
}

/// A shared-data value and its CAS token (None, None when absent).
fn shared_get(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: key pointer/length of a live &str, out-pointers to locals.
    match unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) }
    {
        OK => Ok((Some(take(data, size)), Some(cas))),
        NOT_FOUND => Ok((None, None)),
        s => Err(HostError(s)),
    }
}

fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Result<SetResult, HostError> {
    // SAFETY: pointers/lengths of live slices.
    match unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    } {
        OK => Ok(SetResult::Written),
        CAS_MISMATCH => Ok(SetResult::CasMismatch),
        s => Err(HostError(s)),
    }
}

pub fn register_queue(name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: name pointer/length of a live &str, out-pointer to a local.
    check(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

fn enqueue(queue: u32, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointer/length of a live slice.
    check(unsafe { proxy_enqueue_shared_queue(queue, value.as_ptr(), value.len()) })
}

/// One message; None when the queue is empty.
pub fn dequeue(queue: u32) -> Result<Option<Vec<u8>>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals that outlive the call.
    match unsafe { proxy_dequeue_shared_queue(queue, &mut data, &mut size) } {
        OK => Ok(Some(take(data, size))),
        EMPTY => Ok(None),
        s => Err(HostError(s)),
    }
}

fn define_metric(kind: MetricType, name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: name pointer/length of a live &str, out-pointer to a local.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

fn increment(id: u32, by: i64) {
    // SAFETY: plain value call.
    let _ = unsafe { proxy_increment_metric(id, by) };
}

fn record(id: u32, value: u64) {
    // SAFETY: plain value call.
    let _ = unsafe { proxy_record_metric(id, value) };
}

thread_local! {
    /// Stat ids by name, per VM: the host hands out a fresh id at every
    /// `define_metric`, so a configuration reload reuses the ones it has.
    static METRICS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

/// The proxy-wasm host of one root context.
pub struct Proxy {
    /// This worker's doorbell queue, once registered.
    pub queue: Cell<Option<u32>>,
}

impl Host for Proxy {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn random_u32(&self) -> u32 {
        let mut b = [0u8; 4];
        match getrandom::getrandom(&mut b) {
            Ok(()) => u32::from_le_bytes(b),
            // Never seen (WASI random_get works in Envoy); sample by the clock.
            Err(_) => (now_ms() as u32).wrapping_mul(2_654_435_761),
        }
    }

    fn log(&self, level: Level, msg: &str) {
        log(level, msg);
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        if let Some(id) = METRICS.with(|m| m.borrow().get(name).copied()) {
            return Ok(id);
        }
        let t = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        let id = define_metric(t, name)?;
        METRICS.with(|m| m.borrow_mut().insert(name.to_string(), id));
        Ok(id)
    }

    fn increment(&self, id: u32, by: i64) {
        increment(id, by);
    }

    fn record(&self, id: u32, value: u64) {
        record(id, value);
    }

    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        shared_get(key)
    }

    fn shared_set(
        &self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<SetResult, HostError> {
        shared_set(key, value, cas)
    }

    fn header_map(&self, which: host::Headers) -> Result<Vec<u8>, HostError> {
        header_map_bytes(match which {
            host::Headers::Request => MapType::HttpRequestHeaders,
            host::Headers::Response => MapType::HttpResponseHeaders,
            host::Headers::ResponseTrailers => MapType::HttpResponseTrailers,
            host::Headers::CallResponse => MapType::HttpCallResponseHeaders,
            host::Headers::CallTrailers => MapType::HttpCallResponseTrailers,
        })
    }

    fn body(&self, which: host::Body, max: usize) -> Result<Vec<u8>, HostError> {
        let kind = match which {
            host::Body::Request => BufferType::HttpRequestBody,
            host::Body::Response => BufferType::HttpResponseBody,
            host::Body::CallResponse => BufferType::HttpCallResponseBody,
        };
        self::buffer(kind, 0, max)
    }

    fn dispatch(&self, call: Call<'_>) -> Result<u32, HostError> {
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = (!call.body.is_empty()).then_some(call.body);
        hostcalls::dispatch_http_call(
            call.cluster,
            headers,
            body,
            vec![],
            Duration::from_millis(u64::from(call.timeout_ms)),
        )
        .map_err(|s| HostError(s as u32))
    }

    fn ring_doorbell(&self) -> Result<(), HostError> {
        match self.queue.get() {
            Some(q) => enqueue(q, b"1"),
            None => Err(HostError(NOT_FOUND)),
        }
    }
}
