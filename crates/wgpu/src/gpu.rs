//! One opened adapter: buffers (pooled), compiled kernels (cached), and the
//! command batch that kernels are recorded into.
//!
//! Work is recorded, not submitted: each kernel launch adds a compute pass to
//! the open command encoder, and the encoder is submitted when a result is
//! read back, when the batch reaches `BATCH_PASSES` passes, or on
//! `synchronize`. wgpu orders passes within an encoder and inserts the
//! barriers between them, so a buffer returned to the pool may be handed to
//! a later kernel of the same batch.

use crate::codegen::{input_accessors, output_accessors, run_accessors, substitute};
use crate::pool::{BufferPool, PooledBuffer};
use crate::profile::Profiler;
use crate::shaders;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tessera_tensor::{DType, Error, Result};
use wgpu::util::DeviceExt;

/// Invocations per workgroup of 1-D kernels (`WG` in common.wgsl).
pub const WG: u32 = 256;
/// Passes recorded before the batch is submitted on its own.
const BATCH_PASSES: usize = 64;

/// What to compile: a kernel file, the dtypes of its tensor bindings, and
/// its textual constants.
#[derive(Clone, Debug)]
pub struct KernelSpec {
    pub file: &'static str,
    /// The entry point.
    pub entry: &'static str,
    /// Further files appended after `file` (e.g. "map", the entry point of
    /// elementwise kernels).
    pub libs: Vec<&'static str>,
    /// Input bindings in binding order (binding 1, 2, ...): name and dtype.
    pub inputs: Vec<(&'static str, DType)>,
    /// Inputs bound a second time as `array<vec4<u32>>` (after the
    /// inputs): 16-byte loads of aligned runs, with the input's dtype.
    pub vec4_views: Vec<(&'static str, DType)>,
    /// The output bindings after the inputs: `out` first, then any others
    /// by name.
    pub outs: Vec<(&'static str, DType)>,
    /// A read-write `array<atomic<u32>>` binding after `out`, if any.
    pub scratch: Option<&'static str>,
    pub defs: Vec<(&'static str, String)>,
}

impl KernelSpec {
    pub fn new(file: &'static str) -> Self {
        KernelSpec {
            file,
            entry: "main",
            libs: Vec::new(),
            inputs: Vec::new(),
            vec4_views: Vec::new(),
            outs: Vec::new(),
            scratch: None,
            defs: Vec::new(),
        }
    }
    /// An elementwise kernel: `file` defines `element(i, acc)` and map.wgsl
    /// the entry point; `init` is how each output word starts.
    pub fn map(file: &'static str, init: &str) -> Self {
        KernelSpec::new(file).lib("map").def("INIT", init)
    }
    pub fn entry(mut self, entry: &'static str) -> Self {
        self.entry = entry;
        self
    }
    pub fn lib(mut self, file: &'static str) -> Self {
        self.libs.push(file);
        self
    }
    pub fn input(mut self, name: &'static str, dtype: DType) -> Self {
        self.inputs.push((name, dtype));
        self
    }
    pub fn vec4_view(mut self, name: &'static str, dtype: DType) -> Self {
        self.vec4_views.push((name, dtype));
        self
    }
    /// The main output `out`.
    pub fn out(self, dtype: DType) -> Self {
        self.output("out", dtype)
    }
    /// A further output binding `name` (after `out`).
    pub fn output(mut self, name: &'static str, dtype: DType) -> Self {
        self.outs.push((name, dtype));
        self
    }
    pub fn scratch(mut self, name: &'static str) -> Self {
        self.scratch = Some(name);
        self
    }
    pub fn def(mut self, key: &'static str, value: impl ToString) -> Self {
        self.defs.push((key, value.to_string()));
        self
    }

    fn key(&self) -> String {
        format!(
            "{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.file, self.entry, self.libs, self.inputs, self.vec4_views, self.outs, self.scratch, self.defs
        )
    }

    /// The complete WGSL: common definitions, bindings, accessors, kernel.
    /// Whether each binding (params first) is read-only.
    fn bindings(&self) -> Vec<bool> {
        let mut b = vec![true; 1 + self.inputs.len() + self.vec4_views.len()];
        b.extend(self.outs.iter().map(|_| false));
        b.extend(self.scratch.map(|_| false));
        b
    }

    fn source(&self, features: wgpu::Features) -> Result<String> {
        let mut src = String::new();
        if features.contains(wgpu::Features::SHADER_F16) && self.defs.iter().any(|(k, v)| *k == "USE_F16" && v == "1") {
            src.push_str("enable f16;\n");
        }
        src.push_str(&shaders::load("common")?);
        let mut binding = 1;
        #[allow(clippy::explicit_counter_loop)]
        for (name, dtype) in &self.inputs {
            src.push_str(&format!("@group(0) @binding({binding}) var<storage, read> {name}: array<u32>;\n"));
            src.push_str(&input_accessors(name, *dtype));
            binding += 1;
        }
        for (name, dtype) in &self.vec4_views {
            src.push_str(&format!("@group(0) @binding({binding}) var<storage, read> {name}: array<vec4<u32>>;\n"));
            src.push_str(&run_accessors(name, *dtype));
            binding += 1;
        }
        for (name, dtype) in &self.outs {
            src.push_str(&format!("@group(0) @binding({binding}) var<storage, read_write> {name}: array<u32>;\n"));
            src.push_str(&output_accessors(name, *dtype));
            binding += 1;
        }
        if let Some(name) = self.scratch {
            src.push_str(&format!("@group(0) @binding({binding}) var<storage, read_write> {name}: array<atomic<u32>>;\n"));
        }
        for file in std::iter::once(self.file).chain(self.libs.iter().copied()) {
            let body = shaders::load(file)?;
            let body = substitute(file, &body, &self.defs).map_err(|msg| Error::Device { device: "wgpu".into(), msg })?;
            src.push_str(&body);
        }
        Ok(src)
    }
}

/// A compiled kernel.
pub struct Kernel {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    passes: usize,
}

pub struct Gpu {
    pub name: String,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    pub pool: BufferPool,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    batch: Mutex<Batch>,
    /// Validation or device errors raised outside an error scope.
    errors: Arc<Mutex<Vec<String>>>,
    pub profiler: Profiler,
}

impl Gpu {
    pub fn new(name: String, adapter: &wgpu::Adapter, device: wgpu::Device, queue: wgpu::Queue) -> Gpu {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
        }));
        let features = device.features();
        let limits = device.limits();
        let profiler = Profiler::new(&device, &queue, features);
        Gpu {
            pool: BufferPool::new(name.clone(), limits.max_buffer_size.min(limits.max_storage_buffer_binding_size)),
            name,
            adapter: adapter.get_info(),
            features,
            limits,
            device,
            queue,
            kernels: Mutex::new(HashMap::new()),
            batch: Mutex::new(Batch { encoder: None, passes: 0 }),
            errors,
            profiler,
        }
    }

    fn device_error(&self, msg: impl Into<String>) -> Error {
        Error::Device { device: self.name.clone(), msg: msg.into() }
    }

    /// The workgroup-reduction library kernels use: subgroup operations
    /// where the adapter has them (unless `TESSERA_WGPU_SUBGROUPS=0`), else
    /// workgroup memory alone.
    pub fn group_lib(&self) -> &'static str {
        let allowed = std::env::var("TESSERA_WGPU_SUBGROUPS").map_or(true, |v| v != "0");
        if allowed && self.features.contains(wgpu::Features::SUBGROUP) {
            "group_subgroup"
        } else {
            "group_shared"
        }
    }

    /// Whether the adapter has subgroup operations with subgroups of
    /// exactly `size` invocations.
    pub fn subgroups_of(&self, size: u32) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP) && self.adapter.subgroup_min_size == size && self.adapter.subgroup_max_size == size
    }

    /// Errors the device reported since the last check, as one error.
    pub fn take_errors(&self) -> Result<()> {
        let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ");
        errs.clear();
        Err(self.device_error(msg))
    }

    /// The kernel for `spec`, compiled on first use.
    pub fn kernel(&self, spec: &KernelSpec) -> Result<Arc<Kernel>> {
        let key = spec.key();
        if let Some(k) = self.kernels.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(k.clone());
        }
        let src = spec.source(self.features)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(spec.file), source: wgpu::ShaderSource::Wgsl(src.into()) });
        // An explicit layout: every binding is present whether or not this
        // entry point uses it.
        let entries: Vec<wgpu::BindGroupLayoutEntry> = spec
            .bindings()
            .into_iter()
            .enumerate()
            .map(|(i, read_only)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(spec.file), entries: &entries });
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(spec.file),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(spec.file),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(spec.entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(self.device_error(format!("kernel {} ({:?}, {:?}) does not compile: {e}", spec.file, spec.inputs, spec.defs)));
        }
        let kernel = Arc::new(Kernel { label: spec.file.to_string(), pipeline, layout });
        self.kernels.lock().unwrap_or_else(|p| p.into_inner()).insert(key, kernel.clone());
        Ok(kernel)
    }

    /// Compiles `spec` and records one launch of `groups` workgroups with
    /// `params` at binding 0 and `bufs` at bindings 1, 2, ...
    pub fn launch(&self, spec: &KernelSpec, params: &[u32], bufs: &[&wgpu::Buffer], groups: (u32, u32, u32)) -> Result<()> {
        let kernel = self.kernel(spec)?;
        self.record(&kernel, params, bufs, groups)
    }

    /// Records a 1-D launch of at least `threads` invocations (spread over
    /// x and y: a dimension holds at most 65535 workgroups).
    pub fn launch_1d(&self, spec: &KernelSpec, params: &[u32], bufs: &[&wgpu::Buffer], threads: usize) -> Result<()> {
        if threads == 0 {
            return Ok(());
        }
        let groups = self.grid_1d(threads)?;
        self.launch(spec, params, bufs, groups)
    }

    /// The (x, y) workgroup grid covering `threads` invocations.
    pub fn grid_1d(&self, threads: usize) -> Result<(u32, u32, u32)> {
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let groups = threads.div_ceil(WG as usize);
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(self.device_error(format!("{threads} invocations exceed the adapter's dispatch limits")));
        }
        Ok((x as u32, y as u32, 1))
    }

    fn record(&self, kernel: &Kernel, params: &[u32], bufs: &[&wgpu::Buffer], groups: (u32, u32, u32)) -> Result<()> {
        // The parameters are baked into a buffer of their own: writes through
        // the queue would all land before the batch runs.
        let words: Vec<u32> = if params.is_empty() { vec![0] } else { params.to_vec() };
        let pbuf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: pbuf.as_entire_binding() }];
        for (i, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: 1 + i as u32, resource: b.as_entire_binding() });
        }
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &kernel.layout, entries: &entries });
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let encoder = batch
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tessera") }));
        {
            let timestamps = self.profiler.pass_writes(&kernel.label);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&kernel.label),
                timestamp_writes: timestamps.as_ref().map(|t| t.writes()),
            });
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
        batch.passes += 1;
        if batch.passes >= BATCH_PASSES || self.profiler.full() {
            self.submit_locked(&mut batch);
        }
        Ok(())
    }

    fn submit_locked(&self, batch: &mut Batch) {
        if let Some(mut encoder) = batch.encoder.take() {
            self.profiler.resolve(&mut encoder);
            self.queue.submit([encoder.finish()]);
            self.profiler.after_submit(&self.device);
        }
        batch.passes = 0;
    }

    /// Submits the recorded work.
    pub fn flush(&self) {
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        self.submit_locked(&mut batch);
    }

    /// Submits and waits for all work; reports device errors.
    pub fn synchronize(&self) -> Result<()> {
        self.flush();
        self.device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: None })
            .map_err(|e| self.device_error(format!("waiting for the device: {e}")))?;
        self.take_errors()
    }

    /// A buffer of at least `bytes` bytes (4-byte aligned, never empty).
    pub fn alloc(&self, bytes: usize) -> Result<PooledBuffer> {
        self.pool.alloc(&self.device, bytes)
    }

    /// A buffer holding `bytes`. The copy is recorded into the batch (from a
    /// staging buffer), so it is ordered after the work already recorded,
    /// which may still be writing a pooled buffer this one reuses.
    pub fn upload(&self, bytes: &[u8]) -> Result<PooledBuffer> {
        let buf = self.alloc(bytes.len())?;
        if bytes.is_empty() {
            return Ok(buf);
        }
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().div_ceil(4) * 4, 0);
        let staging = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("upload"),
            contents: &padded,
            usage: wgpu::BufferUsages::COPY_SRC,
        });
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let encoder = batch
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tessera") }));
        encoder.copy_buffer_to_buffer(&staging, 0, buf.buffer(), 0, padded.len() as u64);
        batch.passes += 1;
        if batch.passes >= BATCH_PASSES {
            self.submit_locked(&mut batch);
        }
        Ok(buf)
    }

    /// The first `bytes` bytes of `buf` (submits and waits).
    pub fn download(&self, buf: &wgpu::Buffer, bytes: usize) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let size = (bytes as u64).div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
            let encoder = batch
                .encoder
                .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tessera") }));
            encoder.copy_buffer_to_buffer(buf, 0, &staging, 0, size);
            self.submit_locked(&mut batch);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: None })
            .map_err(|e| self.device_error(format!("waiting for the device: {e}")))?;
        self.take_errors()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.device_error(format!("reading a buffer back: {e}"))),
            Err(_) => return Err(self.device_error("reading a buffer back: the device dropped the request")),
        }
        let data =
            staging.slice(..).get_mapped_range().map_err(|e| self.device_error(format!("reading a buffer back: {e}")))?[..bytes].to_vec();
        staging.unmap();
        Ok(data)
    }
}
