//! proxy-wasm glue (wasm32 only): each callback becomes one engine call.
//!
//! The root context owns the worker's [`Engine`]; its HTTP contexts share it
//! and each holds its stream's state. Every callback returns `Continue`: the
//! primary request and response are never paused, changed or failed.
//!
//! Why the root context owns the pairs and sends the calls: the SDK delivers
//! a dispatched call's answer to the context that was active when the call
//! was made, and drops it if that context is gone; an HTTP context is gone as
//! soon as the client has its response, usually before a slower dark side
//! answers. So an HTTP context only queues the call and rings a per-worker
//! shared queue (the doorbell); the root sends it from `on_queue_ready`,
//! once Envoy has forwarded the primary, and receives every answer itself.
//!
//! Why the SDK's `invalid token_id` panic cannot be reached: the SDK panics
//! when the host answers a token it never registered. The engine sends calls
//! only from root callbacks (`on_queue_ready`, `on_tick`), through the SDK's
//! `dispatch_http_call`, which registers the token under the root before it
//! returns; Envoy answers only tokens whose `httpCall` returned Ok, and
//! defers a failure that happens inside `httpCall` until the VM call has
//! returned (by then the failed token is forgotten on both sides). The
//! engine's tests check that calls leave only from root callbacks.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType};

use crate::engine::{Engine, InvalidConfig, Stream};
use crate::host::{Host, Level};
use crate::proxy::{self, Proxy};

type Shared = Rc<RefCell<Engine<Proxy>>>;

pub fn start() {
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> { Box::new(Root::new(id)) });
}

/// Run `f` on the engine. A callback that re-entered while the engine is
/// busy (never seen: the host defers its own callbacks) is dropped rather
/// than panicking on a double borrow.
fn with_engine<T>(engine: &Shared, f: impl FnOnce(&mut Engine<Proxy>) -> T) -> Option<T> {
    match engine.try_borrow_mut() {
        Ok(mut e) => Some(f(&mut e)),
        Err(_) => {
            proxy::log(Level::Debug, "darklaunch: re-entrant callback ignored");
            None
        }
    }
}

struct Root {
    id: u32,
    engine: Shared,
}

impl Root {
    fn new(id: u32) -> Self {
        let host = Proxy {
            queue: Default::default(),
        };
        Root {
            id,
            engine: Rc::new(RefCell::new(Engine::new(host))),
        }
    }

    fn configure(&self) -> Result<(), String> {
        let bytes = proxy::buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .map_err(|s| format!("cannot read the plugin configuration: host status {}", s.0))?;
        // The VM's environment: `vm_config.environment_variables` in Envoy,
        // `vmConfig.env` of an Istio WasmPlugin.
        let policy = InvalidConfig::from_env(std::env::var(InvalidConfig::ENV).ok().as_deref())?;
        let plugin = proxy::property(&["plugin_name"])
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "darklaunch".to_string());
        with_engine(&self.engine, |e| {
            if e.host().queue.get().is_none() {
                // One queue per root context, so per worker: a queue belongs
                // to the last VM that registered its name.
                let name = format!(
                    "darklaunch.doorbell.{}.{:08x}",
                    self.id,
                    e.host().random_u32()
                );
                let q = proxy::register_queue(&name)
                    .map_err(|s| format!("cannot register shared queue: host status {}", s.0))?;
                e.host().queue.set(Some(q));
            }
            e.configure(&bytes, policy, &plugin).map(|_| ())
        })
        .unwrap_or_else(|| Err("configuration while busy".to_string()))?;
        proxy::set_tick_period_ms(1000)
            .map_err(|s| format!("cannot set tick period: host status {}", s.0))
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match self.configure() {
            Ok(()) => true,
            Err(e) => {
                proxy::log(Level::Error, &format!("darklaunch: {e}"));
                false
            }
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        // The queue is only a doorbell: one message per ring.
        let _ = proxy::dequeue(queue_id);
        with_engine(&self.engine, |e| e.doorbell());
    }

    fn on_tick(&mut self) {
        with_engine(&self.engine, |e| e.tick());
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let stream = with_engine(&self.engine, |e| e.stream())?;
        Some(Box::new(Http {
            engine: self.engine.clone(),
            stream,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        with_engine(&self.engine, |e| {
            e.call_response(token, headers, body, trailers)
        });
    }

    fn on_done(&mut self) -> bool {
        with_engine(&self.engine, |e| e.teardown());
        true
    }
}

struct Http {
    engine: Shared,
    stream: Stream,
}

impl Http {
    fn on(&mut self, f: impl FnOnce(&mut Engine<Proxy>, &mut Stream)) -> Action {
        with_engine(&self.engine, |e| f(e, &mut self.stream));
        Action::Continue
    }
}

impl Context for Http {
    fn on_done(&mut self) -> bool {
        self.on(|e, s| e.stream_done(s));
        true
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, end: bool) -> Action {
        self.on(|e, s| e.request_headers(s, end))
    }

    fn on_http_request_body(&mut self, size: usize, end: bool) -> Action {
        self.on(|e, s| e.request_body(s, size, end))
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.on(|e, s| e.request_trailers(s))
    }

    fn on_http_response_headers(&mut self, _headers: usize, end: bool) -> Action {
        self.on(|e, s| e.response_headers(s, end))
    }

    fn on_http_response_body(&mut self, size: usize, end: bool) -> Action {
        self.on(|e, s| e.response_body(s, size, end))
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        self.on(|e, s| e.response_trailers(s))
    }

    fn on_log(&mut self) {
        self.on(|e, s| e.stream_done(s));
    }
}
