//! Host calls that never panic (wasm32 only).
//!
//! The SDK's `hostcalls::*` return `Result`, but panic on any status they do
//! not expect ("unexpected status: N"), and its map decoder panics on bytes
//! that are not UTF-8. A panic kills the VM (DESIGN fact 3), so the calls the
//! filter makes on every request go through these wrappers: every status is
//! an `Err`, every buffer is parsed with bounds checks. The ABI is the
//! proxy-wasm 0.2.1 one the SDK itself imports; statuses are read as plain
//! integers so an unknown value can never become an invalid enum.
//!
//! `dispatch_http_call` stays with the SDK: it must register the call so the
//! SDK routes the answer back to the root context.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ptr::null_mut;

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

/// A host call that did not return Ok; the raw status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

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

pub fn log(level: LogLevel, msg: &str) {
    // SAFETY: pointer and length of a live &str.
    let _ = unsafe { proxy_log(level as u32, msg.as_ptr(), msg.len()) };
}

/// Milliseconds since the Unix epoch; 0 if the host will not tell.
pub fn now_ms() -> u64 {
    let mut t: u64 = 0;
    // SAFETY: `t` outlives the call.
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        OK => t / 1_000_000,
        _ => 0,
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
pub fn header_map_bytes(kind: MapType) -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals that outlive the call.
    check(unsafe { proxy_get_header_map_pairs(kind as u32, &mut data, &mut size) })?;
    Ok(take(data, size))
}

/// A shared-data value and its CAS token (None, None when absent).
pub fn shared_get(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: key pointer/length of a live &str, out-pointers to locals.
    match unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) }
    {
        OK => Ok((Some(take(data, size)), Some(cas))),
        NOT_FOUND => Ok((None, None)),
        s => Err(HostError(s)),
    }
}

/// Outcome of a CAS write.
pub enum SetResult {
    Written,
    CasMismatch,
}

pub fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Result<SetResult, HostError> {
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

pub fn enqueue(queue: u32, value: &[u8]) -> Result<(), HostError> {
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

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: name pointer/length of a live &str, out-pointer to a local.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment(id: u32, by: i64) {
    // SAFETY: plain value call.
    let _ = unsafe { proxy_increment_metric(id, by) };
}

pub fn record(id: u32, value: u64) {
    // SAFETY: plain value call.
    let _ = unsafe { proxy_record_metric(id, value) };
}
