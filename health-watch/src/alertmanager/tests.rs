use super::*;

fn alerts(labels: &[(&str, &str)]) -> Arc<Alerts> {
    Alerts::new(Alerting {
        alertmanagers: vec![crate::config::alertmanager_url("http://127.0.0.1:9093").unwrap()],
        resend: Duration::from_secs(60),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

fn raise<'a>(target: &'a str, reason: &'a str, at: SystemTime) -> Raised<'a> {
    Raised {
        target,
        kind: "landmark",
        addr: "127.0.0.1:9100",
        class: Some("NG"),
        reason: Some(reason),
        detail: "main thread did not answer within 500ms",
        at,
    }
}

/// Marks everything in `due` delivered now.
fn deliver(sent: &mut HashMap<Arc<Labels>, (u64, Instant)>, due: Due) {
    for (labels, version, _) in due.alerts {
        sent.insert(labels, (version, Instant::now()));
    }
}

#[test]
fn a_raise_fires_once_then_again_at_the_resend() {
    let a = alerts(&[("team", "edge")]);
    let at = SystemTime::now() - Duration::from_secs(5);
    a.raised(&raise("epg-1", "state", at));
    let mut sent = HashMap::new();
    let due = a.due(&mut sent);
    let [(_, _, p)] = &due.alerts[..] else {
        panic!("one alert due")
    };
    let json = serde_json::to_value(p).unwrap();
    assert_eq!(json["labels"]["alertname"], ALERTNAME);
    assert_eq!(json["labels"]["target"], "epg-1");
    assert_eq!(json["labels"]["kind"], "landmark");
    assert_eq!(json["labels"]["address"], "127.0.0.1:9100");
    assert_eq!(json["labels"]["class"], "NG");
    assert_eq!(json["labels"]["reason"], "state");
    assert_eq!(json["labels"]["team"], "edge");
    assert_eq!(
        json["annotations"]["description"],
        "main thread did not answer within 500ms"
    );
    assert_eq!(json["startsAt"], rfc3339(at));
    // Firing: it ends four resends ahead unless sent again.
    let ends = humantime::parse_rfc3339(json["endsAt"].as_str().unwrap()).unwrap();
    let ahead = ends.duration_since(SystemTime::now()).unwrap();
    assert!(ahead > Duration::from_secs(230) && ahead <= Duration::from_secs(240));
    deliver(&mut sent, due);
    let due = a.due(&mut sent);
    assert!(due.alerts.is_empty());
    let next = due.next.unwrap().duration_since(Instant::now());
    assert!(next > Duration::from_secs(58) && next <= Duration::from_secs(60));
}

#[test]
fn a_clear_resolves_the_alert_at_the_clear() {
    let a = alerts(&[]);
    let mut sent = HashMap::new();
    let raised = SystemTime::now() - Duration::from_secs(30);
    a.raised(&raise("epg-1", "state", raised));
    let due = a.due(&mut sent);
    deliver(&mut sent, due);
    let cleared = SystemTime::now() - Duration::from_secs(1);
    a.cleared("epg-1", cleared);
    let due = a.due(&mut sent);
    let [(_, _, p)] = &due.alerts[..] else {
        panic!("the resolved alert is due")
    };
    assert_eq!(p.ends_at, rfc3339(cleared));
    assert_eq!(p.starts_at, rfc3339(raised));
    // A clear for a target with no alert changes nothing.
    deliver(&mut sent, due);
    a.cleared("other", cleared);
    a.cleared("epg-1", cleared);
    assert!(a.due(&mut sent).alerts.is_empty());
}

#[test]
fn a_raise_with_other_labels_resolves_the_one_before() {
    let a = alerts(&[]);
    let mut sent = HashMap::new();
    let t = SystemTime::now();
    a.raised(&raise("epg-1", "state", t - Duration::from_secs(10)));
    let due = a.due(&mut sent);
    deliver(&mut sent, due);
    a.raised(&raise("epg-1", "refused", t));
    let due = a.due(&mut sent);
    let mut seen: Vec<(String, bool)> = due
        .alerts
        .iter()
        .map(|(l, _, p)| (l["reason"].clone(), p.ends_at == rfc3339(t)))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("refused".to_string(), false), ("state".to_string(), true)]
    );
}

#[test]
fn resolved_alerts_are_forgotten_after_the_retention() {
    let a = alerts(&[]);
    let mut sent = HashMap::new();
    let long_ago = SystemTime::now() - RESOLVED_RETENTION - Duration::from_secs(60);
    a.raised(&raise("epg-1", "state", long_ago));
    a.cleared("epg-1", long_ago + Duration::from_secs(1));
    assert!(a.due(&mut sent).alerts.is_empty());
    assert!(a.lock().alerts.is_empty());
}

#[test]
fn a_long_detail_is_cut_and_empty_labels_are_left_out() {
    let a = alerts(&[]);
    let detail = "x".repeat(100_000);
    a.raised(&Raised {
        class: None,
        reason: Some(""),
        detail: &detail,
        ..raise("epg-1", "", SystemTime::now())
    });
    let due = a.due(&mut HashMap::new());
    let (labels, _, p) = &due.alerts[0];
    assert!(!labels.contains_key("class") && !labels.contains_key("reason"));
    assert!(p.annotations["description"].len() < MAX_DETAIL + 40);
}
