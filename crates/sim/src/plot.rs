//! SVG plots of the simulator's JSON reports (`cairn-sim --json FILE`), for
//! `docs/simulation.md`:
//!
//! - `cdf`: the distribution of get latencies in kill reports, before and after the kill;
//! - `churn`: success and latency per window of churn reports;
//! - `hops`: get hops (median and 99th percentile) against log2 of the network's size, from
//!   kill reports of several sizes.
//!
//! Each report is labelled by its file name. Reports are read as plain JSON values, so a
//! report written by an older `cairn-sim` still plots as long as it has the fields used.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

/// Draws plot `kind` of `reports` into the SVG file `out`. Returns what it wrote, to print.
pub fn draw(kind: &str, out: &Path, reports: &[PathBuf]) -> Result<String, String> {
    let mut loaded = Vec::new();
    for path in reports {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a cairn-sim JSON report: {e}", path.display()))?;
        let label = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        loaded.push((label, value));
    }
    match kind {
        "cdf" => cdf(out, &loaded),
        "churn" => churn(out, &loaded),
        "hops" => hops(out, &loaded),
        other => Err(format!("unknown plot {other:?}: use cdf, churn or hops")),
    }
    .map_err(|e| format!("cannot draw {}: {e}", out.display()))?;
    Ok(format!(
        "{} ({kind} plot of {} reports)",
        out.display(),
        loaded.len()
    ))
}

/// A field of a report, by its path of keys.
fn field<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// A number field of a report, or an error naming the report and the field.
fn number(label: &str, value: &Value, path: &[&str]) -> Result<f64, String> {
    field(value, path)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("{label} has no number at {}", path.join(".")))
}

/// A list of numbers of a report.
fn numbers(label: &str, value: &Value, key: &str) -> Result<Vec<f64>, String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .ok_or_else(|| format!("{label} has no list {key} (is it a kill report?)"))
}

type Series = (String, Vec<(f64, f64)>);

/// One chart of line series with points, with a legend.
fn chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
    series: &[Series],
    (points, legend): (bool, SeriesLabelPosition),
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, data)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if points {
            chart
                .draw_series(data.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

fn cdf(out: &Path, reports: &[(String, Value)]) -> Result<(), String> {
    let mut series: Vec<Series> = Vec::new();
    for (label, report) in reports {
        for (key, phase) in [
            ("get_latencies_ms", "all alive"),
            ("after_kill_latencies_ms", "after the kill"),
        ] {
            let ms = numbers(label, report, key)?;
            let n = ms.len().max(1) as f64;
            let points: Vec<(f64, f64)> = ms
                .iter()
                .enumerate()
                .map(|(i, x)| (*x, (i + 1) as f64 / n))
                .collect();
            series.push((format!("{label}, {phase}"), points));
        }
    }
    let max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    chart(
        &root,
        "Get latency, cumulative",
        ("get latency (ms, virtual)", "fraction of gets"),
        0.0..max * 1.02,
        0.0..1.0,
        &series,
        (false, SeriesLabelPosition::LowerRight),
    )?;
    root.present().map_err(|e| e.to_string())
}

fn churn(out: &Path, reports: &[(String, Value)]) -> Result<(), String> {
    let mut success = Vec::new();
    let mut latency = Vec::new();
    let mut last = 1.0f64;
    let mut worst = 100.0f64;
    let mut slowest = 1.0f64;
    for (label, report) in reports {
        let windows = report
            .get("windows")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{label} has no windows (is it a churn report?)"))?;
        let (mut ok, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
        for w in windows {
            let at = number(label, w, &["start_min"])? / 60.0;
            let percent = number(label, w, &["gets", "success_percent"])?;
            let median = number(label, w, &["gets", "latency_ms", "p50"])?;
            let tail = number(label, w, &["gets", "latency_ms", "p99"])?;
            last = last.max(at);
            worst = worst.min(percent);
            slowest = slowest.max(tail);
            ok.push((at, percent));
            p50.push((at, median));
            p99.push((at, tail));
        }
        success.push((label.clone(), ok));
        latency.push((format!("{label}, p50"), p50));
        latency.push((format!("{label}, p99"), p99));
    }
    let root = SVGBackend::new(out, (900, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(380);
    let floor = (worst - 1.0).clamp(0.0, 98.0).floor();
    chart(
        &top,
        "Gets that succeeded, per window of churn",
        ("hours of churn (window start)", "gets ok (%)"),
        0.0..last + 0.2,
        floor..100.5,
        &success,
        (true, SeriesLabelPosition::LowerRight),
    )?;
    chart(
        &bottom,
        "Get latency per window of churn",
        ("hours of churn (window start)", "latency (ms, virtual)"),
        0.0..last + 0.2,
        0.0..slowest * 1.1,
        &latency,
        (true, SeriesLabelPosition::UpperRight),
    )?;
    root.present().map_err(|e| e.to_string())
}

fn hops(out: &Path, reports: &[(String, Value)]) -> Result<(), String> {
    let mut sizes = Vec::new();
    for (label, report) in reports {
        let nodes = number(label, report, &["network", "nodes"])?;
        let p50 = number(label, report, &["network", "gets", "hops", "p50"])?;
        let p99 = number(label, report, &["network", "gets", "hops", "p99"])?;
        sizes.push((nodes.max(1.0).log2(), p50, p99));
    }
    sizes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let series = vec![
        (
            "get hops, median".to_string(),
            sizes.iter().map(|s| (s.0, s.1)).collect(),
        ),
        (
            "get hops, 99th percentile".to_string(),
            sizes.iter().map(|s| (s.0, s.2)).collect(),
        ),
    ];
    let high = sizes.iter().map(|s| s.2).fold(1.0, f64::max);
    let (lo, hi) = (
        sizes.first().map_or(0.0, |s| s.0),
        sizes.last().map_or(1.0, |s| s.0),
    );
    let root = SVGBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    chart(
        &root,
        "Get hops against network size",
        ("log2(nodes)", "hops"),
        (lo - 0.5)..(hi + 0.5),
        0.0..high + 1.0,
        &series,
        (true, SeriesLabelPosition::LowerRight),
    )?;
    root.present().map_err(|e| e.to_string())
}
