//! Plots with `plotters`, each written as PNG and SVG: the T×T heatmap of a run and family
//! (annotated cells), accuracy versus cumulative compute across runs (the paper's headline
//! figure), and the training curves of tic-train's runs (loss, lr, throughput, zero-shot
//! top-1 per step) for tic-report.
//!
//! Text is rendered with `ab_glyph` from an embedded font (`assets/TicPlotSans.ttf`, a subset
//! of DejaVu Sans, Bitstream Vera licence in `assets/TicPlotSans.LICENSE`), so plots render on
//! a machine without fontconfig or system fonts.

use crate::dynamic::{FamilyMatrix, Report};
use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/TicPlotSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font(FAMILY, style, FONT)
                .unwrap_or_else(|_| panic!("embedded plot font is a valid TTF"));
        }
    });
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e}")
}

/// Writes one figure as PNG and SVG using `draw` on each backend.
macro_rules! render_both {
    ($stem:expr, $size:expr, $draw:expr) => {{
        register_font();
        let stem: &Path = $stem;
        let size: (u32, u32) = $size;
        let png_path = stem.with_extension("png");
        let svg_path = stem.with_extension("svg");
        let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
            ($draw)(&root)?;
            root.present().map_err(err)?;
        }
        let img = image::RgbImage::from_raw(size.0, size.1, rgb)
            .context("plot buffer has the wrong size")?;
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .context("encoding PNG")?;
        crate::write_output(&png_path, &png)?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            ($draw)(&root)?;
            root.present().map_err(err)?;
        }
        crate::write_output(&svg_path, svg.as_bytes())?;
        Ok::<Vec<PathBuf>, anyhow::Error>(vec![png_path, svg_path])
    }};
}

/// Viridis-like colour for `t` in `[0, 1]`.
fn colour(t: f64) -> RGBColor {
    const STOPS: [(f64, [f64; 3]); 5] = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.25, [59.0, 82.0, 139.0]),
        (0.5, [33.0, 145.0, 140.0]),
        (0.75, [94.0, 201.0, 98.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let t = t.clamp(0.0, 1.0);
    let k = STOPS.iter().position(|(s, _)| *s >= t).unwrap_or(4).max(1);
    let (t0, c0) = STOPS[k - 1];
    let (t1, c1) = STOPS[k];
    let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
    let mix = |i: usize| (c0[i] + f * (c1[i] - c0[i])).round() as u8;
    RGBColor(mix(0), mix(1), mix(2))
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    steps: &[String],
    fm: &FamilyMatrix,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let t = steps.len();
    if t == 0 {
        return Ok(());
    }
    let values: Vec<f64> = fm.matrix.iter().flatten().flatten().copied().collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 16))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(90)
        // Integer ranges are inclusive in plotters: 0..t-1 gives t segments.
        .build_cartesian_2d((0..t - 1).into_segmented(), (0..t - 1).into_segmented())
        .map_err(err)?;
    // Row i (training step i) is drawn top to bottom: y = t - 1 - i.
    let x_label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => steps.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let y_label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(y) if *y < t => steps[t - 1 - *y].clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(t)
        .y_labels(t)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_desc("evaluation time")
        .y_desc("training time")
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    for (i, row) in fm.matrix.iter().enumerate() {
        let y = t - 1 - i;
        for (j, v) in row.iter().enumerate() {
            let fill = v.map_or(RGBColor(220, 220, 220), |v| colour((v - lo) / span));
            let corners = [
                (SegmentValue::Exact(j), SegmentValue::Exact(y)),
                (SegmentValue::Exact(j + 1), SegmentValue::Exact(y + 1)),
            ];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    corners.clone(),
                    fill.filled(),
                )))
                .map_err(err)?;
            let text = v.map_or_else(|| "–".to_string(), |v| format!("{:.1}", 100.0 * v));
            let light = v.is_some_and(|v| (v - lo) / span < 0.6);
            let style = TextStyle::from((FAMILY, 14).into_font())
                .color(if light { &WHITE } else { &BLACK })
                .pos(Pos::new(HPos::Center, VPos::Center));
            let (px, py) = chart.backend_coord(&corners[0]);
            let (qx, qy) = chart.backend_coord(&corners[1]);
            root.draw(&Text::new(text, ((px + qx) / 2, (py + qy) / 2), style))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Writes `{dir}/heatmap_{family}_{run}.{png,svg}` for every run and family.
pub fn heatmaps(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for run in &report.runs {
        for fm in &run.matrices {
            let stem = dir.join(format!(
                "heatmap_{}_{}",
                fm.family.id(),
                crate::tables::slug(&run.name)
            ));
            let title = format!("{} | {} | {} (%)", run.name, fm.family.id(), fm.metric);
            let t = report.steps.len() as u32;
            let side = (140 + 75 * t).max(440);
            out.extend(render_both!(&stem, (side + 120, side), |root| {
                draw_heatmap(root, &title, &report.steps, fm)
            })?);
        }
    }
    Ok(out)
}

/// Extracts the plotted value of one model.
type PickFn = Box<dyn Fn(&crate::dynamic::StepPoint) -> Option<f64>>;

/// The y value of the compute plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeMetric {
    /// ImageNet and its shifts if present, else the first family's "seen so far".
    Auto,
    /// ImageNet-1k `acc1`.
    Imagenet,
    /// Mean over ImageNet and its distribution shifts present.
    ImagenetAndShifts,
    /// Mean of `E[i][j]`, `j ≤ i`, of the first TiC family (retrieval if present).
    SeenSoFar,
}

/// Writes `{dir}/compute.{png,svg}`: the chosen metric of each run's models against the run's
/// cumulative compute (MACs if a per-sample figure is known, else samples seen). Returns no
/// path when no run has both values.
pub fn compute_plot(report: &Report, dir: &Path, metric: ComputeMetric) -> Result<Vec<PathBuf>> {
    let metric = match metric {
        ComputeMetric::Auto
            if report
                .runs
                .iter()
                .any(|r| r.per_step.iter().any(|p| p.imagenet_and_shifts.is_some())) =>
        {
            ComputeMetric::ImagenetAndShifts
        }
        ComputeMetric::Auto => ComputeMetric::SeenSoFar,
        m => m,
    };
    let fam = report
        .families
        .iter()
        .position(|f| f.family == tic_splits::taskkey::TicFamily::Retrieval)
        .or(if report.families.is_empty() {
            None
        } else {
            Some(0)
        });
    let (y_desc, pick): (String, PickFn) = match metric {
        ComputeMetric::Imagenet => ("ImageNet acc1 (%)".into(), Box::new(|p| p.imagenet)),
        ComputeMetric::ImagenetAndShifts | ComputeMetric::Auto => (
            "ImageNet and its shifts (%)".into(),
            Box::new(|p| p.imagenet_and_shifts),
        ),
        ComputeMetric::SeenSoFar => (
            format!(
                "{} on times seen so far (%)",
                fam.map_or("TiC".to_string(), |f| report.families[f].id())
            ),
            Box::new(move |p| fam.and_then(|f| p.seen_so_far.get(f).copied().flatten())),
        ),
    };
    let use_macs = report.macs_per_sample.is_some();
    let series: Vec<(String, Vec<(f64, f64)>)> = report
        .runs
        .iter()
        .map(|r| {
            let pts = r
                .per_step
                .iter()
                .filter_map(|p| {
                    let x = if use_macs {
                        p.cumulative_macs
                    } else {
                        p.cumulative_samples
                    }?;
                    Some((x, 100.0 * pick(p)?))
                })
                .collect();
            (r.name.clone(), pts)
        })
        .collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    if all.is_empty() {
        tracing::warn!("compute plot skipped: no run has both compute and {y_desc}");
        return Ok(Vec::new());
    }
    let x_max = all.iter().map(|p| p.0).fold(0.0, f64::max) * 1.05;
    let (y_lo, y_hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.1), h.max(p.1))
        });
    let pad = ((y_hi - y_lo) * 0.1).max(0.5);
    let x_desc = if use_macs {
        "cumulative training MACs"
    } else {
        "cumulative samples seen"
    };
    let ctx = LineChart {
        title: format!("{y_desc} vs compute"),
        series,
        x_range: (0.0, x_max.max(1.0)),
        y_range: (y_lo - pad, y_hi + pad),
        x_desc: x_desc.to_string(),
        y_desc,
        scientific: (true, false),
        markers: true,
        legend_top: false,
    };
    render_both!(&dir.join("compute"), (900, 600), |root| draw_lines(
        root, &ctx
    ))
}

/// A chart of one line per series (the compute plot, the training curves).
struct LineChart {
    title: String,
    series: Vec<(String, Vec<(f64, f64)>)>,
    x_range: (f64, f64),
    y_range: (f64, f64),
    x_desc: String,
    y_desc: String,
    /// Tick labels of (x, y) in scientific notation.
    scientific: (bool, bool),
    /// A dot at every point.
    markers: bool,
    /// The legend top right (else bottom right).
    legend_top: bool,
}

/// The series legend, in the plots' one style, at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 13))
        .position(position)
        .draw()
        .map_err(err)
}

fn draw_lines<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, ctx: &LineChart) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(ctx.title.as_str(), (FAMILY, 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(ctx.x_range.0..ctx.x_range.1, ctx.y_range.0..ctx.y_range.1)
        .map_err(err)?;
    let x_fmt = |v: &f64| format!("{v:.2e}");
    let y_fmt = |v: &f64| format!("{v:.3e}");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(ctx.x_desc.as_str()).y_desc(ctx.y_desc.as_str());
    // x: compute (scientific) or steps (integers); y: plotters' own rounded labels unless
    // scientific.
    let step_fmt = |v: &f64| format!("{v:.0}");
    if ctx.scientific.0 {
        mesh.x_label_formatter(&x_fmt);
    } else {
        mesh.x_label_formatter(&step_fmt);
    }
    if ctx.scientific.1 {
        mesh.y_label_formatter(&y_fmt);
    }
    mesh.label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    for (k, (name, pts)) in ctx.series.iter().enumerate() {
        let c = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        if ctx.markers {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
    }
    let legend = if ctx.legend_top {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::LowerRight
    };
    draw_legend(&mut chart, legend)?;
    Ok(())
}

/// Writes `{dir}/training_{loss,lr,samples_per_s,zero_shot_top1}.{png,svg}`
/// ([`crate::runs::CURVES`]): each curve against the optimizer step, one line per run
/// (`(name, curves)`: a strategy at a time step), as TensorBoard would show them side by side.
/// A curve no run has is not drawn. Returns the PNG paths written.
pub fn training_curves(
    runs: &[(String, &crate::runs::TrainingCurves)],
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (i, (stem, title, y_desc)) in crate::runs::CURVES.into_iter().enumerate() {
        let series: Vec<(String, Vec<(f64, f64)>)> = runs
            .iter()
            .map(|(name, c)| (name.clone(), c.curve(i)))
            .filter(|(_, pts)| !pts.is_empty())
            .collect();
        let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        if all.is_empty() {
            continue;
        }
        let span = |v: &mut dyn Iterator<Item = f64>| {
            v.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                (l.min(x), h.max(x))
            })
        };
        let (x_lo, x_hi) = span(&mut all.iter().map(|p| p.0));
        let (y_lo, y_hi) = span(&mut all.iter().map(|p| p.1));
        let pad = ((y_hi - y_lo) * 0.05).max(y_hi.abs() * 0.01).max(1e-12);
        let ctx = LineChart {
            title: title.to_string(),
            x_range: (x_lo.min(x_hi - 1.0).max(0.0), x_hi),
            y_range: (y_lo - pad, y_hi + pad),
            x_desc: "step".to_string(),
            y_desc: y_desc.to_string(),
            scientific: (false, stem == "training_lr"),
            markers: series.iter().all(|(_, p)| p.len() <= 50),
            legend_top: true,
            series,
        };
        let files = render_both!(&dir.join(stem), (900, 500), |root| draw_lines(root, &ctx))?;
        out.push(files[0].clone());
    }
    Ok(out)
}

/// Writes `{stem}.{png,svg}`: a budget sweep (`tic-sweep`) in two panels, one column per
/// budget (in budget order, evenly spaced: the sweep's budgets usually double): the reference −
/// method ID gap (mean ± std over seeds, in points) with the `tolerance` line, and the
/// method/reference compute ratio. `names`: (method, reference). (The embedded font has no
/// `−` or `±`: labels use ASCII.)
pub fn sweep_plot(
    points: &[crate::sweep::SweepPoint],
    stem: &Path,
    title: &str,
    names: (&str, &str),
    tolerance: f64,
) -> Result<Vec<PathBuf>> {
    let pts: Vec<SweepBar> = points
        .iter()
        .filter_map(|p| {
            Some(SweepBar {
                budget: p.budget,
                gap: 100.0 * p.gap.mean()?,
                std: 100.0 * p.gap.std().unwrap_or(0.0),
                ratio: p.compute_ratio(),
            })
        })
        .collect();
    if pts.is_empty() {
        anyhow::bail!("sweep plot: no budget has a gap");
    }
    let y_lo = pts.iter().map(|p| p.gap - p.std).fold(0.0f64, f64::min);
    let y_hi = pts
        .iter()
        .map(|p| p.gap + p.std)
        .fold(100.0 * tolerance, f64::max);
    let pad = ((y_hi - y_lo) * 0.1).max(0.5);
    let ctx = SweepCtx {
        pts,
        y: (y_lo - pad, y_hi + pad),
        title: title.to_string(),
        gap_desc: format!("{} - {} ID (points)", names.1, names.0),
        ratio_desc: format!("compute {} / {}", names.0, names.1),
        tolerance: 100.0 * tolerance,
    };
    render_both!(stem, (900, 700), |root| draw_sweep(root, &ctx))
}

struct SweepBar {
    budget: f64,
    /// Gap mean and std over the seeds, in points.
    gap: f64,
    std: f64,
    ratio: Option<f64>,
}

struct SweepCtx {
    pts: Vec<SweepBar>,
    y: (f64, f64),
    title: String,
    gap_desc: String,
    ratio_desc: String,
    tolerance: f64,
}

/// One panel of the sweep plot: the `n` budgets as segments on x (labelled by `x_fmt`),
/// `y` on the value axis described by `y_desc`, its mesh drawn.
fn budget_panel<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    n: usize,
    y: std::ops::Range<f64>,
    y_desc: &str,
    x_fmt: &dyn Fn(&SegmentValue<usize>) -> String,
) -> Result<ChartContext<'a, DB, Cartesian2d<SegmentedCoord<RangedCoordusize>, RangedCoordf64>>> {
    // Integer ranges are inclusive in plotters: 0..n-1 gives n segments, one per budget.
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n - 1).into_segmented(), y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(n)
        .x_desc("samples per time step")
        .y_desc(y_desc)
        .x_label_formatter(x_fmt)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

fn draw_sweep<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, ctx: &SweepCtx) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&ctx.title, (FAMILY, 18)).map_err(err)?;
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 * 62 / 100);
    let n = ctx.pts.len();
    // Integer ranges are inclusive in plotters: 0..n-1 gives n segments, one per budget.
    let x_fmt = |x: &SegmentValue<usize>| match x {
        SegmentValue::CenterOf(i) if *i < n => format!("{:.0}", ctx.pts[*i].budget),
        _ => String::new(),
    };
    let mut chart = budget_panel(&top, n, ctx.y.0..ctx.y.1, &ctx.gap_desc, &x_fmt)?;
    let x_end = (SegmentValue::Exact(0), SegmentValue::Exact(n));
    chart
        .draw_series(LineSeries::new(
            [(x_end.0.clone(), 0.0), (x_end.1.clone(), 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new(
            [(x_end.0, ctx.tolerance), (x_end.1, ctx.tolerance)],
            grey.stroke_width(1),
        ))
        .map_err(err)?
        .label(format!("tolerance {:.1} points", ctx.tolerance))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    let blue = RGBColor(31, 119, 180);
    let at = SegmentValue::CenterOf;
    chart
        .draw_series(LineSeries::new(
            ctx.pts.iter().enumerate().map(|(i, p)| (at(i), p.gap)),
            blue.stroke_width(2),
        ))
        .map_err(err)?
        .label("gap, mean +/- std over seeds")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart
        .draw_series(ctx.pts.iter().enumerate().map(|(i, p)| {
            PathElement::new(
                vec![(at(i), p.gap - p.std), (at(i), p.gap + p.std)],
                blue.stroke_width(2),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(
            ctx.pts
                .iter()
                .enumerate()
                .map(|(i, p)| Circle::new((at(i), p.gap), 4, blue.filled())),
        )
        .map_err(err)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    let ratios: Vec<(SegmentValue<usize>, f64)> = ctx
        .pts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((at(i), p.ratio?)))
        .collect();
    let r_hi = ratios.iter().map(|r| r.1).fold(1.0f64, f64::max) * 1.1;
    let mut chart = budget_panel(&bottom, n, 0.0..r_hi, &ctx.ratio_desc, &x_fmt)?;
    let red = RGBColor(214, 39, 40);
    chart
        .draw_series(LineSeries::new(ratios.iter().cloned(), red.stroke_width(2)))
        .map_err(err)?;
    chart
        .draw_series(
            ratios
                .iter()
                .map(|p| Circle::new(p.clone(), 4, red.filled())),
        )
        .map_err(err)?;
    Ok(())
}
