//! The picture d2l draws while training: loss, training accuracy and test accuracy per epoch.

use nnc_runtime::train::EpochMetrics;
use plotters::prelude::*;

/// A curve: its legend, its colour, and the metric it follows.
type Curve = (&'static str, RGBColor, fn(&EpochMetrics) -> Option<f64>);

/// The curves as an SVG document, drawn in memory so that the caller writes the file
/// atomically (plotters' own file backend writes in place, and a kill would leave half a file).
pub fn curves(history: &[EpochMetrics], title: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut svg = String::new();
    draw(history, title, &mut svg)?;
    Ok(svg)
}

fn draw(history: &[EpochMetrics], title: &str, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (640, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let epochs = history.len().max(1) as f64;
    let top = history
        .iter()
        .flat_map(|m| [m.train_loss, m.train_acc, m.test_acc])
        .chain(history.iter().filter_map(|m| m.test_loss))
        .fold(1.0f64, f64::max)
        .min(10.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(1f64..epochs.max(2.0), 0f64..top * 1.05)?;
    chart.configure_mesh().x_desc("epoch").light_line_style(WHITE).draw()?;
    // The test loss of epochs resumed from an older checkpoint is unknown, and left out.
    let series: [Curve; 4] = [
        ("train loss", BLUE, |m| Some(m.train_loss)),
        ("test loss", CYAN, |m| m.test_loss),
        ("train acc", MAGENTA, |m| Some(m.train_acc)),
        ("test acc", GREEN, |m| Some(m.test_acc)),
    ];
    for (label, color, value) in series {
        let points: Vec<(f64, f64)> =
            history.iter().filter_map(|m| Some((m.epoch as f64, value(m)?))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}
