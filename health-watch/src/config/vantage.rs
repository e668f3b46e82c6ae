//! A target's vantage keys (`source`, `source_mode`, `vantage`,
//! `vantage_module`, `quorum`, `on_path`), also in `[defaults]`, made into
//! its [`Vantages`]: each problem shown at its key.

use std::ops::Range;

use health_probe::check::Check;
use health_probe::source::Source;
use toml::Spanned;

use super::Common;
use crate::vantage::remote::RemoteProbe;
use crate::vantage::{Point, SourceMode, Vantages};

/// Where `v` is written, or the table's `span` without it.
fn place<T>(v: &Option<Spanned<T>>, span: &Range<usize>) -> Range<usize> {
    v.as_ref().map_or(span.clone(), Spanned::span)
}

/// Most sources, and most vantage points, of one target.
const MAX_POINTS: usize = 16;

/// The vantage points `common` gives `check`, or `None` for one local
/// point with no source (the target is checked as any other).
pub(super) fn vantages(
    common: &Common,
    check: &Check,
    span: Range<usize>,
    error: &mut dyn FnMut(Range<usize>, String),
) -> Option<Box<Vantages>> {
    let mut sources = Vec::new();
    if let Some(list) = &common.source {
        for s in list.get_ref() {
            match s.parse::<Source>() {
                Ok(src) if sources.contains(&src) => {
                    error(list.span(), format!("source {s:?} is given twice"))
                }
                Ok(src) => sources.push(src),
                Err(e) => error(list.span(), e.to_string()),
            }
        }
        if list.get_ref().is_empty() {
            error(
                list.span(),
                "source is empty: remove it or give addresses or interfaces".into(),
            );
        }
    }
    let mode = match common
        .source_mode
        .as_ref()
        .map(|m| (m, m.get_ref().as_str()))
    {
        None | Some((_, "alternate")) => SourceMode::Alternate,
        Some((_, "all")) => SourceMode::All,
        Some((m, other)) => {
            error(
                m.span(),
                format!("source_mode must be \"alternate\" or \"all\", not {other:?}"),
            );
            SourceMode::Alternate
        }
    };
    if common.source_mode.is_some() && sources.len() < 2 {
        error(
            place(&common.source_mode, &span),
            "source_mode needs two or more sources".into(),
        );
    }
    let mut points = Vec::new();
    let mut remotes = 0;
    let written: Vec<String> = match &common.vantage {
        Some(v) => v.get_ref().clone(),
        None => vec!["local".into()],
    };
    if written.is_empty() {
        error(
            place(&common.vantage, &span),
            "vantage is empty: remove it or give \"local\" or watchers' URLs".into(),
        );
    }
    let module = common.vantage_module.as_ref().map(|m| m.get_ref().clone());
    for w in &written {
        if w == "local" {
            if points.iter().any(|p| matches!(p, Point::Local(_))) {
                error(
                    place(&common.vantage, &span),
                    "vantage gives \"local\" twice".into(),
                );
                continue;
            }
            if sources.is_empty() {
                points.push(Point::Local(check.clone()));
            }
            for s in &sources {
                points.push(Point::Local(check.via(Some(s.clone()))));
            }
            continue;
        }
        match crate::http_client::http_url(w, "a watcher", "/probe") {
            Ok(url) => {
                let point = Point::Remote(RemoteProbe::new(url, module.clone()));
                if points.contains(&point) {
                    error(
                        place(&common.vantage, &span),
                        format!("vantage gives {w:?} twice"),
                    );
                } else {
                    remotes += 1;
                    points.push(point);
                }
            }
            Err(e) => error(
                place(&common.vantage, &span),
                format!("vantage {w:?} is neither \"local\" nor a watcher's URL: it {e}"),
            ),
        }
    }
    if !sources.is_empty() && !written.iter().any(|w| w == "local") {
        error(
            place(&common.source, &span),
            "source applies to the \"local\" vantage point, which vantage leaves out".into(),
        );
    }
    if points.len() > MAX_POINTS {
        error(
            place(&common.vantage, &span),
            format!("at most {MAX_POINTS} vantage points, sources included"),
        );
    }
    if let Some(m) = &common.vantage_module {
        let name = m.get_ref();
        let fine = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !fine {
            error(
                m.span(),
                "vantage_module must be a module name: 1 to 64 letters, digits, '_' or '-'".into(),
            );
        }
        if remotes == 0 {
            error(
                m.span(),
                "vantage_module applies to remote vantage points, and there are none".into(),
            );
        }
    }
    let quorum = common.quorum.as_ref().map(|q| {
        let n = *q.get_ref() as usize;
        if n == 0 || n > points.len().max(1) {
            error(
                q.span(),
                format!(
                    "quorum must be 1 to the number of vantage points ({}), not {n}",
                    points.len()
                ),
            );
        }
        n.clamp(1, points.len().max(1))
    });
    if let Some(cmd) = &common.on_path {
        if cmd.trim().is_empty() {
            error(
                span.clone(),
                "on_path is empty: remove it or give a command".into(),
            );
        } else if points.len() < 2 {
            error(
                span.clone(),
                "on_path needs two or more vantage points (source or vantage)".into(),
            );
        }
    }
    let plain = points.len() == 1 && matches!(&points[0], Point::Local(c) if c.source().is_none());
    if plain || points.is_empty() {
        return None;
    }
    Some(Box::new(Vantages::new(
        points,
        mode,
        quorum,
        common.on_path.clone(),
    )))
}
