//! `tessera bench --plot FILE.svg`: a roofline picture of a benchmark run.
//!
//! Each case is a point at its arithmetic intensity (FLOP per byte moved,
//! from the case's own FLOP and byte counts) and its achieved GFLOP/s (the
//! median run, as in the table), on log-log axes, under two ceilings measured
//! in the same run on the same device ([`measure_ceilings`]):
//! - peak compute, per dtype of the run: the fastest run of a large matmul
//!   in that dtype (a horizontal line);
//! - bandwidth: the fastest run of a large contiguous copy, bytes read +
//!   written per second (the line `GFLOP/s = GB/s x intensity`).
//!
//! They meet at the ridge point, `peak / bandwidth` FLOP per byte. A measured
//! ceiling is a lower bound on the hardware's, so points may lie above it
//! (a small case whose data stays in cache beats the copy's DRAM bandwidth).
//! Cases with no FLOPs (copies) have no place on log axes and are listed
//! under the plot instead.
//!
//! The picture is drawn with plotters' SVG backend into a string and written
//! with one `std::fs::write`, so a bad path is an [`Error::Io`] naming it.

use crate::bench::{copy_case, json_line, matmul_case, result_fields, run_case, BenchOptions, BenchResult, Size};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::json;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use tessera_tensor::{DType, Device, Error, Result};

/// Side of the square matmul that sets a compute ceiling.
fn ceiling_matmul_side(size: Size) -> usize {
    match size {
        Size::Full => 2048,
        Size::Small => 256,
    }
}

/// Elements (f32) of the copy that sets the bandwidth ceiling: 256 MiB read
/// and 256 MiB written at full size, well past any cache.
fn ceiling_copy_len(size: Size) -> usize {
    match size {
        Size::Full => 1 << 26,
        Size::Small => 1 << 22,
    }
}

/// One measured ceiling: the case that set it and its rate on its fastest run.
#[derive(Clone, Debug)]
pub struct Ceiling {
    pub result: BenchResult,
    /// GFLOP/s for a compute ceiling, GB/s for the bandwidth one.
    pub rate: f64,
}

/// The ceilings of one run: a compute peak per dtype and the copy bandwidth.
/// A ceiling whose measurement failed is absent.
#[derive(Clone, Debug, Default)]
pub struct Ceilings {
    pub compute: Vec<(DType, Ceiling)>,
    pub bandwidth: Option<Ceiling>,
}

impl Ceilings {
    /// Intensity (FLOP/byte) where a compute peak meets the bandwidth line.
    pub fn ridge(&self, peak_gflops: f64) -> Option<f64> {
        self.bandwidth.as_ref().map(|b| peak_gflops / b.rate)
    }
}

/// The dtypes whose compute peaks a plot of `results` needs: those of its
/// cases with FLOPs, in order of appearance; f32 when there are none.
pub fn plotted_dtypes(results: &[BenchResult]) -> Vec<DType> {
    let mut dtypes = Vec::new();
    for r in results.iter().filter(|r| r.flops > 0.0) {
        if !dtypes.contains(&r.dtype) {
            dtypes.push(r.dtype);
        }
    }
    if dtypes.is_empty() {
        dtypes.push(DType::F32);
    }
    dtypes
}

/// Measures the compute peak of each of `dtypes` (a square matmul) and the
/// copy bandwidth on `device`, each case checked before it is timed as every
/// bench case is. Returns the ceilings measured and an error message for
/// each that failed.
pub fn measure_ceilings(device: &Device, dtypes: &[DType], size: Size, opts: &BenchOptions) -> (Ceilings, Vec<String>) {
    let mut ceilings = Ceilings::default();
    let mut errors = Vec::new();
    let side = ceiling_matmul_side(size);
    for &dtype in dtypes {
        match run_case(&matmul_case(device, dtype, side, side, side, false), device, opts) {
            Ok(result) => ceilings.compute.push((dtype, Ceiling { rate: result.best_gflops(), result })),
            Err(e) => errors.push(format!("compute ceiling ({dtype}): {e}")),
        }
    }
    match run_case(&copy_case(device, DType::F32, ceiling_copy_len(size)), device, opts) {
        Ok(result) => ceilings.bandwidth = Some(Ceiling { rate: result.best_gbps(), result }),
        Err(e) => errors.push(format!("bandwidth ceiling: {e}")),
    }
    (ceilings, errors)
}

/// The ceilings as JSON lines: each is its case's result line (as
/// `result_json`) with `"ceiling"`: `"compute"` and `peak_gflops`, or
/// `"bandwidth"` and `peak_gbps`, both from the fastest run; a compute line
/// also carries `ridge` (FLOP/byte) where the bandwidth was measured.
pub fn ceilings_json(ceilings: &Ceilings) -> Vec<String> {
    let mut lines = Vec::new();
    for (_, c) in &ceilings.compute {
        let mut fields = result_fields(&c.result);
        fields.push(("ceiling", json!("compute")));
        fields.push(("peak_gflops", json!(c.rate)));
        if let Some(ridge) = ceilings.ridge(c.rate) {
            fields.push(("ridge", json!(ridge)));
        }
        lines.push(json_line(&fields));
    }
    if let Some(b) = &ceilings.bandwidth {
        let mut fields = result_fields(&b.result);
        fields.push(("ceiling", json!("bandwidth")));
        fields.push(("peak_gbps", json!(b.rate)));
        lines.push(json_line(&fields));
    }
    lines
}

/// The ceilings as text lines for under the table.
pub fn format_ceilings(ceilings: &Ceilings) -> String {
    let mut s = String::new();
    for (dtype, c) in &ceilings.compute {
        let ridge = ceilings.ridge(c.rate).map_or(String::new(), |r| format!(", ridge at {} FLOP/byte", fmt_num(r)));
        s += &format!("ceiling: {dtype} peak {:.2} GFLOP/s (matmul {}, fastest run){ridge}\n", c.rate, c.result.shape);
    }
    if let Some(b) = &ceilings.bandwidth {
        s += &format!("ceiling: copy bandwidth {:.2} GB/s (copy {} {}, fastest run)\n", b.rate, b.result.shape, b.result.dtype);
    }
    s
}

/// Fails early, before a run, when `path` cannot be a file to write: its
/// directory is missing or it is itself a directory.
pub fn check_plot_path(path: &Path) -> Result<()> {
    let io = |msg: String| Error::Io { path: path.display().to_string(), source: std::io::Error::other(msg) };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(io(format!("cannot write the plot: directory {} does not exist", dir.display())));
    }
    if path.is_dir() {
        return Err(io("cannot write the plot: this is a directory".into()));
    }
    Ok(())
}

/// Draws the roofline of `results` under `ceilings` and writes it to `path`
/// as SVG. The title names the device and today's date (UTC).
pub fn write_plot(path: &Path, device: &Device, results: &[BenchResult], ceilings: &Ceilings) -> Result<()> {
    let info = device.info();
    let title = format!("Roofline: {} ({}), {}", info.description, info.name, utc_date(SystemTime::now()));
    let svg = render_svg(&title, results, ceilings)
        .map_err(|msg| Error::Io { path: path.display().to_string(), source: std::io::Error::other(format!("drawing the plot: {msg}")) })?;
    std::fs::write(path, svg).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;
/// plotters' text size for labels; SVG text is this over 1.24 pixels high.
const LABEL_SIZE: f64 = 15.0;
const FONT: &str = "sans-serif";
const BANDWIDTH_COLOR: RGBColor = RGBColor(70, 70, 70);

/// One colour per dtype, shared by its points and its compute ceiling.
fn dtype_color(dtype: DType) -> RGBColor {
    match dtype {
        DType::F32 => RGBColor(31, 119, 180),
        DType::BF16 => RGBColor(214, 95, 0),
        DType::F16 => RGBColor(44, 150, 44),
        _ => RGBColor(148, 80, 189),
    }
}

/// A case on the plot.
struct Point {
    label: String,
    dtype: DType,
    intensity: f64,
    gflops: f64,
}

/// The picture as SVG text; plotters' errors come back as text.
fn render_svg(title: &str, results: &[BenchResult], ceilings: &Ceilings) -> std::result::Result<String, String> {
    let points: Vec<Point> = results
        .iter()
        .filter(|r| r.flops > 0.0 && r.gflops > 0.0)
        .map(|r| Point { label: format!("{} {} {}", r.op, r.shape, r.dtype), dtype: r.dtype, intensity: r.intensity(), gflops: r.gflops })
        .collect();
    let unplotted: Vec<String> =
        results.iter().filter(|r| !(r.flops > 0.0 && r.gflops > 0.0)).map(|r| format!("{} {} {}", r.op, r.shape, r.dtype)).collect();
    let (xr, yr) = axis_ranges(&points, ceilings);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (main, foot) = root.split_vertically(HEIGHT - 30);
        let mut chart = ChartBuilder::on(&main)
            .caption(title, (FONT, 26))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d(xr.clone().log_scale(), yr.clone().log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity (FLOP per byte moved)")
            .y_desc("achieved GFLOP/s (median run)")
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()
            .map_err(|e| e.to_string())?;

        let area = plot_rect(&chart);
        let mut labels = Vec::new();
        // Boxes labels keep off: the legend, the points, then each line and
        // label as it is drawn.
        let pixels: Vec<(i32, i32)> = points.iter().map(|p| chart.backend_coord(&(p.intensity, p.gflops))).collect();
        let mut taken: Vec<Rect> = pixels.iter().map(|&px| Rect::around(px, 6)).collect();
        taken.push(legend_rect(&area, &ceilings_dtypes(&points, ceilings)));

        // The bandwidth line, from where it enters the plot to the highest ridge.
        let top_ridge = ceilings.compute.iter().filter_map(|(_, c)| ceilings.ridge(c.rate)).fold(f64::NAN, f64::max);
        if let Some(bw) = &ceilings.bandwidth {
            let x0 = xr.start.max(yr.start / bw.rate);
            let x1 = if top_ridge.is_nan() { xr.end.min(yr.end / bw.rate) } else { top_ridge };
            let line = [(x0, bw.rate * x0), (x1, bw.rate * x1)];
            chart.draw_series(LineSeries::new(line, BANDWIDTH_COLOR.stroke_width(3))).map_err(|e| e.to_string())?;
            taken.extend(line_boxes(&chart, line));
            // Its label sits above the line, ending on it, as far left as
            // it fits.
            let candidates: Vec<((i32, i32), Spot)> = (1..=8)
                .flat_map(|i| {
                    let x = x0 * (x1 / x0).powf(i as f64 / 10.0);
                    let origin = chart.backend_coord(&(x, bw.rate * x));
                    right_anchored_above().into_iter().map(move |s| (origin, s))
                })
                .collect();
            let text = format!("copy bandwidth {:.2} GB/s (copy {} {})", bw.rate, bw.result.shape, bw.result.dtype);
            let label = place_among(&text, &candidates, &area, &mut taken, BANDWIDTH_COLOR);
            labels.push(Label { leader: None, ..label });
        }

        // One compute ceiling per dtype, from its ridge to the right edge.
        for (dtype, c) in &ceilings.compute {
            let color = dtype_color(*dtype);
            let ridge = ceilings.ridge(c.rate).unwrap_or(xr.start).max(xr.start);
            let line = [(ridge, c.rate), (xr.end, c.rate)];
            chart.draw_series(LineSeries::new(line, color.stroke_width(3))).map_err(|e| e.to_string())?;
            taken.extend(line_boxes(&chart, line));
            let corner = chart.backend_coord(&(ridge, c.rate));
            if ceilings.bandwidth.is_some() {
                // The ridge's ring, drawn below.
                taken.push(Rect::around(corner, 8));
            }
            let right = chart.backend_coord(&(xr.end, c.rate));
            let text = format!("{dtype} peak {:.2} GFLOP/s (matmul {})", c.rate, c.result.shape);
            // Along the line only (right of its ridge); the colour says
            // which line a label belongs to, so no leader.
            let start = chart.backend_coord(&(ridge, c.rate)).0 as f64;
            let width = text_size(&text).0;
            let mut spots: Vec<Spot> = ceiling_label_spots().into_iter().filter(|s| right.0 as f64 + s.dx - width >= start).collect();
            if spots.is_empty() {
                spots = ceiling_label_spots()[..2].to_vec();
            }
            let label = place(&text, right, &spots, &area, &mut taken, color);
            labels.push(Label { leader: None, ..label });
            if ceilings.bandwidth.is_some() {
                // The ridge: a ring on the corner and a dashed drop to the axis.
                let drop = [(ridge, yr.start), (ridge, c.rate)];
                chart.draw_series(DashedLineSeries::new(drop, 6, 5, color.mix(0.6).stroke_width(1))).map_err(|e| e.to_string())?;
                chart.draw_series([Circle::new((ridge, c.rate), 7, color.stroke_width(2))]).map_err(|e| e.to_string())?;
                let text = format!("ridge {} FLOP/B", fmt_num(ridge));
                labels.push(place(&text, corner, &above_first(), &area, &mut taken, color));
            }
        }

        // The points, then their labels, each where it overlaps least.
        chart
            .draw_series(points.iter().map(|p| Circle::new((p.intensity, p.gflops), 5, dtype_color(p.dtype).filled())))
            .map_err(|e| e.to_string())?;
        let spots = point_label_spots();
        for (p, &px) in points.iter().zip(&pixels) {
            labels.push(place(&p.label, px, &spots, &area, &mut taken, dtype_color(p.dtype)));
        }

        for label in &labels {
            if let Some((from, to)) = label.leader {
                root.draw(&PathElement::new([from, to], label.color.mix(0.5).stroke_width(1))).map_err(|e| e.to_string())?;
            }
            let style = TextStyle::from((FONT, LABEL_SIZE).into_font()).color(&label.color).pos(label.anchor);
            root.draw(&Text::new(label.text.clone(), label.at, style)).map_err(|e| e.to_string())?;
        }
        draw_legend(&root, &area, &ceilings_dtypes(&points, ceilings))?;

        if !unplotted.is_empty() {
            let note = format!("not drawn (no FLOPs): {}", unplotted.join("; "));
            foot.draw(&Text::new(note, (20, 8), (FONT, LABEL_SIZE).into_font().color(&BLACK))).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Log-axis ranges that hold every point, ceiling and ridge, with room above
/// the highest ceiling for its label.
fn axis_ranges(points: &[Point], ceilings: &Ceilings) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let mut xs: Vec<f64> = points.iter().map(|p| p.intensity).collect();
    let mut ys: Vec<f64> = points.iter().map(|p| p.gflops).collect();
    for (_, c) in &ceilings.compute {
        ys.push(c.rate);
        xs.extend(ceilings.ridge(c.rate));
    }
    let span = |v: &[f64], below: f64, above: f64, default: (f64, f64)| {
        let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite() && *x > 0.0).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        if v.is_empty() {
            default.0..default.1
        } else {
            // Whole decades where that costs little, so the axis reads well.
            (lo / below)..(hi * above)
        }
    };
    let x = span(&xs, 4.0, 4.0, (0.01, 1000.0));
    let mut y = span(&ys, 4.0, 3.0, (0.1, 1000.0));
    if let Some(bw) = &ceilings.bandwidth {
        // Show the bandwidth line over at least the left tenth of the plot.
        let at_left = bw.rate * x.start * (x.end / x.start).powf(0.1);
        y.start = y.start.min(at_left);
        if ceilings.compute.is_empty() {
            y.end = y.end.max(bw.rate * x.end);
        }
    }
    (x, y)
}

/// The dtypes with a colour on the plot: its points' and its ceilings'.
fn ceilings_dtypes(points: &[Point], ceilings: &Ceilings) -> Vec<DType> {
    let mut v: Vec<DType> = Vec::new();
    for d in points.iter().map(|p| p.dtype).chain(ceilings.compute.iter().map(|c| c.0)) {
        if !v.contains(&d) {
            v.push(d);
        }
    }
    v
}

/// An axis-aligned box in backend pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    fn around((x, y): (i32, i32), r: i32) -> Rect {
        Rect { x0: (x - r) as f64, y0: (y - r) as f64, x1: (x + r) as f64, y1: (y + r) as f64 }
    }
    fn overlap(&self, o: &Rect) -> f64 {
        let w = self.x1.min(o.x1) - self.x0.max(o.x0);
        let h = self.y1.min(o.y1) - self.y0.max(o.y0);
        if w > 0.0 && h > 0.0 {
            w * h
        } else {
            0.0
        }
    }
    fn inside(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }
}

/// The plotting area (inside the axes) in backend pixels.
fn plot_rect<DB: DrawingBackend, CT: CoordTranslate>(chart: &ChartContext<DB, CT>) -> Rect {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    Rect { x0: xs.start as f64, y0: ys.start as f64, x1: xs.end as f64, y1: ys.end as f64 }
}

/// Small boxes along a line on the plot, so that labels keep off it.
fn line_boxes<DB: DrawingBackend>(
    chart: &ChartContext<DB, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>,
    [a, b]: [(f64, f64); 2],
) -> Vec<Rect> {
    let (pa, pb) = (chart.backend_coord(&a), chart.backend_coord(&b));
    let len = (((pb.0 - pa.0) as f64).powi(2) + ((pb.1 - pa.1) as f64).powi(2)).sqrt();
    let steps = (len / 6.0).ceil().max(1.0) as i32;
    (0..=steps)
        .map(|i| {
            let t = i as f64 / steps as f64;
            let p = (pa.0 + ((pb.0 - pa.0) as f64 * t) as i32, pa.1 + ((pb.1 - pa.1) as f64 * t) as i32);
            Rect::around(p, 3)
        })
        .collect()
}

/// Estimated size of a label in pixels: a generous average glyph width for
/// a sans-serif face, since the SVG viewer picks the font.
fn text_size(text: &str) -> (f64, f64) {
    let px = LABEL_SIZE / 1.24;
    (0.6 * px * text.chars().count() as f64, 1.25 * px)
}

/// Where a label may go relative to its anchor pixel: an offset and the
/// side of the text that sits at the offset.
#[derive(Clone, Copy)]
struct Spot {
    dx: f64,
    dy: f64,
    h: HPos,
}

/// Right, left, above and below a point, then farther up and down on both
/// sides (joined to the point by a leader line).
fn point_label_spots() -> Vec<Spot> {
    let line = text_size("").1;
    let mut spots = vec![
        Spot { dx: 9.0, dy: 0.0, h: HPos::Left },
        Spot { dx: -9.0, dy: 0.0, h: HPos::Right },
        Spot { dx: 0.0, dy: -line, h: HPos::Center },
        Spot { dx: 0.0, dy: line, h: HPos::Center },
    ];
    for k in 1..=8 {
        let dy = k as f64 * line;
        for (dx, h) in [(9.0 + 3.0 * k as f64, HPos::Left), (-9.0 - 3.0 * k as f64, HPos::Right)] {
            spots.push(Spot { dx, dy: -dy, h });
            spots.push(Spot { dx, dy, h });
        }
    }
    spots
}

/// Just above a ceiling's right end, else just below it, then the same
/// farther left along the line, then a line farther off it.
fn ceiling_label_spots() -> Vec<Spot> {
    let line = text_size("").1;
    [0.8, 1.9]
        .into_iter()
        .flat_map(|off| {
            (0..8).flat_map(move |k| {
                let dx = -8.0 - 90.0 * k as f64;
                [Spot { dx, dy: -off * line, h: HPos::Right }, Spot { dx, dy: off * line, h: HPos::Right }]
            })
        })
        .collect()
}

/// Above a point (centred, then to either side), else below.
fn above_first() -> Vec<Spot> {
    let line = text_size("").1;
    vec![
        Spot { dx: 0.0, dy: -1.2 * line, h: HPos::Center },
        Spot { dx: -10.0, dy: -1.2 * line, h: HPos::Right },
        Spot { dx: 10.0, dy: -1.2 * line, h: HPos::Left },
        Spot { dx: 12.0, dy: 1.0 * line, h: HPos::Left },
        Spot { dx: 0.0, dy: -2.4 * line, h: HPos::Center },
    ]
}

/// Left of and above a point on a rising line (where the plot is empty).
fn right_anchored_above() -> Vec<Spot> {
    let line = text_size("").1;
    (0..4).map(|k| Spot { dx: -10.0, dy: -0.6 * line - k as f64 * line, h: HPos::Right }).collect()
}

/// A placed label: its text, anchor, colour and leader line if any.
struct Label {
    text: String,
    at: (i32, i32),
    anchor: Pos,
    color: RGBColor,
    leader: Option<((i32, i32), (i32, i32))>,
}

/// Puts `text` at the first of `spots` around `origin` that lies inside
/// `area` and overlaps nothing in `taken`; if none is free, where it
/// overlaps least (off the plot counting as much overlap). The label's box
/// joins `taken`.
fn place(text: &str, origin: (i32, i32), spots: &[Spot], area: &Rect, taken: &mut Vec<Rect>, color: RGBColor) -> Label {
    let candidates: Vec<((i32, i32), Spot)> = spots.iter().map(|&s| (origin, s)).collect();
    place_among(text, &candidates, area, taken, color)
}

/// [`place`] over spots around several origins (a label that may sit
/// anywhere along a line); the leader, if any, joins the chosen origin.
fn place_among(text: &str, candidates: &[((i32, i32), Spot)], area: &Rect, taken: &mut Vec<Rect>, color: RGBColor) -> Label {
    let (w, h) = text_size(text);
    let boxed = |origin: (i32, i32), s: &Spot| {
        let x = origin.0 as f64 + s.dx;
        let y = origin.1 as f64 + s.dy;
        let x0 = match s.h {
            HPos::Left => x,
            HPos::Right => x - w,
            HPos::Center => x - w / 2.0,
        };
        Rect { x0, y0: y - h / 2.0, x1: x0 + w, y1: y + h / 2.0 }
    };
    let mut best: Option<(f64, usize)> = None;
    for (i, (origin, s)) in candidates.iter().enumerate() {
        let r = boxed(*origin, s);
        // Off the plot counts as a large overlap, not a refusal, so a label
        // always has somewhere to go.
        let outside = if r.inside(area) { 0.0 } else { w * h * 4.0 };
        let cost = outside + taken.iter().map(|t| t.overlap(&r)).sum::<f64>();
        if !matches!(best, Some((c, _)) if c <= cost) {
            best = Some((cost, i));
        }
        if cost == 0.0 {
            break;
        }
    }
    let i = best.map_or(0, |b| b.1);
    let (origin, s) = candidates[i];
    let r = boxed(origin, &s);
    taken.push(r);
    let at = ((origin.0 as f64 + s.dx).round() as i32, (origin.1 as f64 + s.dy).round() as i32);
    // A label away from its point gets a line to the nearest end of its text.
    let far = s.dy.abs() >= 0.9 * h;
    let leader = far.then(|| {
        let x = match s.h {
            HPos::Left => r.x0,
            HPos::Right => r.x1,
            HPos::Center => (r.x0 + r.x1) / 2.0,
        };
        (origin, (x.round() as i32, at.1))
    });
    Label { text: text.to_string(), at, anchor: Pos::new(s.h, VPos::Center), color, leader }
}

/// Where the legend goes: the top-left corner of the plot, above the
/// bandwidth line, where no case can be.
fn legend_rect(area: &Rect, dtypes: &[DType]) -> Rect {
    let line = text_size("").1 + 4.0;
    let w = text_size("copy bandwidth (measured)").0 + 40.0;
    Rect { x0: area.x0 + 10.0, y0: area.y0 + 10.0, x1: area.x0 + 10.0 + w, y1: area.y0 + 16.0 + line * (dtypes.len() + 1) as f64 }
}

/// A key: one dot per dtype (its cases and its compute ceiling share the
/// colour) and the bandwidth line.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    area: &Rect,
    dtypes: &[DType],
) -> std::result::Result<(), String> {
    let r = legend_rect(area, dtypes);
    let line = text_size("").1 + 4.0;
    let corner = |x: f64, y: f64| (x.round() as i32, y.round() as i32);
    root.draw(&Rectangle::new([corner(r.x0, r.y0), corner(r.x1, r.y1)], WHITE.mix(0.9).filled())).map_err(|e| e.to_string())?;
    root.draw(&Rectangle::new([corner(r.x0, r.y0), corner(r.x1, r.y1)], RGBColor(180, 180, 180).stroke_width(1)))
        .map_err(|e| e.to_string())?;
    let row_y = |i: usize| r.y0 + 8.0 + line * (i as f64 + 0.5);
    for (i, &d) in dtypes.iter().enumerate() {
        let y = row_y(i);
        root.draw(&Circle::new(corner(r.x0 + 16.0, y), 5, dtype_color(d).filled())).map_err(|e| e.to_string())?;
        let style = TextStyle::from((FONT, LABEL_SIZE).into_font()).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(format!("{d}: cases and peak"), corner(r.x0 + 30.0, y), style)).map_err(|e| e.to_string())?;
    }
    let y = row_y(dtypes.len());
    root.draw(&PathElement::new([corner(r.x0 + 6.0, y), corner(r.x0 + 26.0, y)], BANDWIDTH_COLOR.stroke_width(3)))
        .map_err(|e| e.to_string())?;
    let style = TextStyle::from((FONT, LABEL_SIZE).into_font()).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    root.draw(&Text::new("copy bandwidth (measured)", corner(r.x0 + 30.0, y), style)).map_err(|e| e.to_string())?;
    Ok(())
}

/// A number for an axis or a label: integers above 10, three significant
/// digits below.
fn fmt_num(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// `YYYY-MM-DD` (UTC) of `t`, by the proleptic Gregorian calendar.
pub fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = tessera_hf::time::civil_from_days((secs / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_by_the_calendar() {
        let at = |secs: u64| utc_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01");
        assert_eq!(at(951_782_400), "2000-02-29");
        assert_eq!(at(951_868_800), "2000-03-01");
        assert_eq!(at(1_709_164_800), "2024-02-29");
        assert_eq!(at(1_735_689_599), "2024-12-31");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(1234.6), "1235");
        assert_eq!(fmt_num(10.0), "10");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_num(0.0833333), "0.0833");
        assert_eq!(fmt_num(1.0), "1");
    }

    #[test]
    fn a_label_avoids_what_is_taken() {
        let area = Rect { x0: 0.0, y0: 0.0, x1: 1000.0, y1: 1000.0 };
        let mut taken = vec![Rect { x0: 505.0, y0: 490.0, x1: 700.0, y1: 510.0 }];
        let label = place("matmul 128x128x128 f32", (500, 500), &point_label_spots(), &area, &mut taken, BLACK);
        // The right of the point is taken, so the label goes to its left.
        assert!(matches!(label.anchor.h_pos, HPos::Right));
        assert!(taken[0].overlap(&taken[1]) == 0.0);
    }

    #[test]
    fn missing_directory_is_refused_before_a_run() {
        let path = std::env::temp_dir().join("tessera-no-such-dir-for-plots").join("r.svg");
        let e = check_plot_path(&path).unwrap_err().to_string();
        assert!(e.contains("r.svg") && e.contains("does not exist"), "{e}");
        assert!(check_plot_path(&std::env::temp_dir().join("r.svg")).is_ok());
        assert!(check_plot_path(Path::new("r.svg")).is_ok());
    }
}
