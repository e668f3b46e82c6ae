//! `/silences`: the silences and maintenance windows in force or to come,
//! as the running watcher holds them (what `health-probe silence list`
//! prints): whose raises are held now, until when, and why.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use maud::html;

use super::render::{layout, rfc3339};
use super::Pages;
use crate::silence::Origin;

pub(super) async fn page(State(pages): State<Arc<Pages>>) -> Response {
    let now = SystemTime::now();
    let list = pages.silences.list();
    let body = html! {
        p class="summary" {
            (list.iter().filter(|s| s.in_force(now)).count()) " in force, "
            (list.iter().filter(|s| s.from > now).count()) " to come · add or remove with "
            code { "health-probe silence" } " or " code { "/api/v1/silences" }
        }
        @if list.is_empty() {
            p { "No silence is in force or to come." }
        } @else {
            table {
                thead { tr {
                    th { "id" } th { "targets" } th { "from" } th { "until" } th { "state" }
                    th { "by" } th { "reason" }
                } }
                tbody {
                    @for s in &list {
                        tr class=(if s.in_force(now) { "held" } else { "" }) {
                            td class="num" { (s.id) }
                            td class="name" { (s.matcher) }
                            td { time datetime=(rfc3339(s.from)) { (rfc3339(s.from)) } }
                            td { time datetime=(rfc3339(s.until)) { (rfc3339(s.until)) } }
                            td { @if s.in_force(now) { "in force" } @else { "to come" } }
                            td {
                                @match &s.origin {
                                    Origin::Window(name) => { "maintenance " (name) }
                                    _ => (s.author),
                                }
                            }
                            td class="why" { (health_probe::text::cut(&s.reason, 512)) }
                        }
                    }
                }
            }
        }
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(layout("Silences", body).into_string()),
    )
        .into_response()
}
