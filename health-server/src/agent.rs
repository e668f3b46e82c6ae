//! HAProxy's `agent-check` text protocol on an optional port: on each
//! connection, one line mapped from the landmark, then close.
//!
//! HAProxy reads one ASCII line of words. Only the agent can undo what it
//! set (a DRAIN or DOWN it reported), so every line states the operating
//! state, the administrative state and the weight explicitly:
//!
//! | landmark | line |
//! |---|---|
//! | `ok`, `degraded` | `up ready W%` |
//! | `drain` | `up drain` |
//! | `fail` | `down #<detail>` |
//!
//! `W` is the landmark's weight used as a percentage of the server's
//! configured weight (weight 50 is `50%`); no weight is `100%`. Anything
//! HAProxy sends first (`agent-send`) is ignored.

use health_proto::{Landmark, State};

use crate::admission::Slot;
use crate::conn::Conn;
use crate::context::{evict, Context};

/// Longest description after `#`: HAProxy shows it on the stats page.
const MAX_DESCRIPTION: usize = 200;

/// Answers one agent connection. HAProxy's agent says nothing, so the
/// connection arrives idle; it is busy (never evicted) from here on, for
/// at most the answer deadline plus the write timeout.
pub(crate) async fn serve(mut conn: Conn, ctx: &Context, mut slot: Slot) {
    let peer = conn.peer();
    if !slot.busy() {
        // Evicted before it could be answered. A service known to be down
        // (hung, gone, stale) is still said to be, so a flood cannot keep
        // HAProxy from hearing it; the line goes out before a plain close.
        match ctx.observer.known_failure() {
            Some(fail) => {
                let _ = conn.write_now(agent_line(&fail).as_bytes());
            }
            None => evict(&conn),
        }
        return;
    }
    let line = match ctx.check("agent", None).await {
        Ok(reply) => agent_line(&reply.landmark),
        // Cannot happen for a whole-service check; report it as down anyway.
        Err(e) => format!("down #{}\n", sanitize(&e.message)),
    };
    let write = async {
        conn.write_all(line.as_bytes()).await?;
        conn.shutdown_write()
    };
    match tokio::time::timeout(ctx.conn.write_timeout, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "agent-check write error"),
        Err(_) => tracing::info!(%peer, "agent-check reply not taken within the write timeout"),
    }
}

/// The agent-check line for a landmark, newline included.
pub(crate) fn agent_line(l: &Landmark) -> String {
    match l.state {
        State::Ok | State::Degraded => {
            let pct = l.weight.map_or(100, |w| u32::from(w.get()));
            format!("up ready {pct}%\n")
        }
        State::Drain => "up drain\n".to_string(),
        State::Fail => {
            let d = sanitize(&l.detail);
            if d.is_empty() {
                "down\n".to_string()
            } else {
                format!("down #{d}\n")
            }
        }
    }
}

/// One line of printable text: control characters become spaces, and the
/// length is bounded (on a char boundary).
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let kept = health_proto::text::truncate(&out, MAX_DESCRIPTION).len();
    out.truncate(kept);
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use health_proto::Weight;

    #[test]
    fn lines_for_each_state() {
        assert_eq!(agent_line(&Landmark::ok("x")), "up ready 100%\n");
        assert_eq!(
            agent_line(&Landmark::degraded("x").with_weight(Weight::new(75).unwrap())),
            "up ready 75%\n"
        );
        assert_eq!(
            agent_line(&Landmark::ok("x").with_weight(Weight::new(0).unwrap())),
            "up ready 0%\n"
        );
        assert_eq!(agent_line(&Landmark::drain("restart")), "up drain\n");
        assert_eq!(
            agent_line(&Landmark::fail("main thread did not answer within 500ms")),
            "down #main thread did not answer within 500ms\n"
        );
        assert_eq!(agent_line(&Landmark::fail("")), "down\n");
    }

    #[test]
    fn description_is_one_bounded_line() {
        let line = agent_line(&Landmark::fail(format!("a\r\nb{}", "é".repeat(300))));
        assert!(line.starts_with("down #a  b"));
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.len() <= "down #\n".len() + MAX_DESCRIPTION);
    }
}
