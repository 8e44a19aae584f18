//! Per-kernel GPU time from timestamp queries.
//!
//! When enabled (and the adapter has `TIMESTAMP_QUERY`), every compute pass
//! writes a timestamp at its start and end; each submitted batch resolves
//! them, waits for the device and adds each pass's duration to its kernel's
//! total. Profiling therefore serialises batches: it is for benchmarks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Passes timed per batch (two queries each).
const CAPACITY: u32 = 128;

struct Timers {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f64,
}

#[derive(Default)]
struct State {
    /// Kernel labels of the passes recorded in the open batch.
    labels: Vec<String>,
    /// Whether the open batch's queries were resolved into `readback`.
    resolved: bool,
    totals: HashMap<String, (f64, u64)>,
}

pub struct Profiler {
    timers: Option<Timers>,
    enabled: AtomicBool,
    state: Mutex<State>,
}

/// The timestamp indices of one pass.
pub struct PassTimestamps<'a> {
    query_set: &'a wgpu::QuerySet,
    index: u32,
}

impl PassTimestamps<'_> {
    pub fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: self.query_set,
            beginning_of_pass_write_index: Some(2 * self.index),
            end_of_pass_write_index: Some(2 * self.index + 1),
        }
    }
}

impl Profiler {
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, features: wgpu::Features) -> Profiler {
        let timers = features.contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
            let bytes = 2 * CAPACITY as u64 * 8;
            Timers {
                query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("kernel timers"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * CAPACITY,
                }),
                resolve: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamps"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                readback: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamps readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                period_ns: queue.get_timestamp_period() as f64,
            }
        });
        Profiler { timers, enabled: AtomicBool::new(false), state: Mutex::new(State::default()) }
    }

    pub fn available(&self) -> bool {
        self.timers.is_some()
    }

    /// Turns timing on or off; answers whether timing is on.
    pub fn set_enabled(&self, on: bool) -> bool {
        let on = on && self.available();
        self.enabled.store(on, Ordering::SeqCst);
        on
    }

    /// The timestamp writes for the next pass, when timing is on.
    pub fn pass_writes(&self, label: &str) -> Option<PassTimestamps<'_>> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let timers = self.timers.as_ref()?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let index = st.labels.len() as u32;
        if index >= CAPACITY {
            return None;
        }
        st.labels.push(label.to_string());
        Some(PassTimestamps { query_set: &timers.query_set, index })
    }

    /// Whether the batch has used every timer (it must be submitted).
    pub fn full(&self) -> bool {
        self.enabled.load(Ordering::Relaxed) && self.state.lock().unwrap_or_else(|p| p.into_inner()).labels.len() as u32 >= CAPACITY
    }

    /// Records the resolution of this batch's timestamps into `encoder`.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let Some(timers) = &self.timers else { return };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let n = st.labels.len() as u32;
        if n == 0 {
            return;
        }
        encoder.resolve_query_set(&timers.query_set, 0..2 * n, &timers.resolve, 0);
        encoder.copy_buffer_to_buffer(&timers.resolve, 0, &timers.readback, 0, 2 * n as u64 * 8);
        st.resolved = true;
    }

    /// After a submit: reads the batch's timestamps and adds them up.
    pub fn after_submit(&self, device: &wgpu::Device) {
        let Some(timers) = &self.timers else { return };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.resolved {
            st.labels.clear();
            return;
        }
        let n = st.labels.len();
        let slice = timers.readback.slice(0..2 * n as u64 * 8);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        let waited = device.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).is_ok();
        if let (true, Ok(view)) = (waited, slice.get_mapped_range()) {
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
            drop(view);
            let labels = std::mem::take(&mut st.labels);
            for (i, label) in labels.into_iter().enumerate() {
                let ns = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * timers.period_ns;
                let e = st.totals.entry(label).or_insert((0.0, 0));
                e.0 += ns;
                e.1 += 1;
            }
            timers.readback.unmap();
        }
        st.labels.clear();
        st.resolved = false;
    }

    /// Per kernel: total GPU seconds and launches since the last call.
    pub fn take(&self) -> Vec<(String, f64, u64)> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, f64, u64)> = st.totals.drain().map(|(k, (ns, n))| (k, ns * 1e-9, n)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}
