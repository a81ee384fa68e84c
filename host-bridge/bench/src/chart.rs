//! What the report's and the fleet's charts draw alike: a named line series (with
//! a dot at each point where the x values are few and discrete) and the legend in
//! the upper right, so that all the PNGs look the same.

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// A chart with f64 on both axes.
pub type XyChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// plotters' errors are generic over the backend; the bench only reports them.
pub fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}

/// The label at `x` of an axis of categories at 0, 1, 2, …: `PREFIX LABEL` at
/// a whole x, nothing between.
pub fn category<T: std::fmt::Display>(x: f64, prefix: &str, labels: &[T]) -> String {
    let i = x.round() as usize;
    if (x - i as f64).abs() < 0.01 && i < labels.len() {
        format!("{prefix}{}", labels[i])
    } else {
        String::new()
    }
}

/// Draws `pts` as a line named `label` in the legend, and a dot at each point
/// if `dots`.
pub fn line<'a, DB: DrawingBackend + 'a>(
    chart: &mut XyChart<'a, DB>,
    pts: Vec<(f64, f64)>,
    color: RGBColor,
    label: impl Into<String>,
    dots: bool,
) -> Result<()> {
    let dot_pts = if dots { pts.clone() } else { Vec::new() };
    chart
        .draw_series(LineSeries::new(pts, color.stroke_width(2)))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
    chart
        .draw_series(
            dot_pts
                .into_iter()
                .map(|(x, y)| Circle::new((x, y), 4, color.filled())),
        )
        .map_err(err)?;
    Ok(())
}

/// The legend of the series drawn so far, upper right, in `font_size` points.
pub fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut XyChart<'a, DB>,
    font_size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", font_size))
        .draw()
        .map_err(err)?;
    Ok(())
}
