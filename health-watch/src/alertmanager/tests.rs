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
        reminder: None,
    }
}

/// Marks everything in `due` delivered now.
fn deliver(sent: &mut Sent, due: Due) {
    for (labels, version, _) in due {
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
    let [(_, _, p)] = &due[..] else {
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
    assert!(due.is_empty());
    // The one alert delivered falls due again a resend later: a firing
    // alert is re-sent for as long as its alarm is open.
    let next = a.next_due(&sent).unwrap().duration_since(Instant::now());
    assert!(next > Duration::from_secs(58) && next <= Duration::from_secs(60));
    // And it is due then, with its end pushed on.
    for (_, at) in sent.values_mut() {
        *at -= Duration::from_secs(61);
    }
    let [(_, _, p)] = &a.due(&mut sent)[..] else {
        panic!("due again after the resend")
    };
    let ends = humantime::parse_rfc3339(&p.ends_at).unwrap();
    assert!(ends.duration_since(SystemTime::now()).unwrap() > Duration::from_secs(230));
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
    let [(_, _, p)] = &due[..] else {
        panic!("the resolved alert is due")
    };
    assert_eq!(p.ends_at, rfc3339(cleared));
    assert_eq!(p.starts_at, rfc3339(raised));
    // A clear for a target with no alert changes nothing.
    deliver(&mut sent, due);
    a.cleared("other", cleared);
    a.cleared("epg-1", cleared);
    assert!(a.due(&mut sent).is_empty());
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
    assert!(a.due(&mut sent).is_empty());
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
    let (labels, _, p) = &due[0];
    assert!(!labels.contains_key("class") && !labels.contains_key("reason"));
    assert!(p.annotations["description"].len() < MAX_DETAIL + 40);
}

/// A receiver on loopback that answers `reply`, then closes.
fn receiver(reply: &'static [u8]) -> crate::config::AlertmanagerUrl {
    let (addr, _) = test_support::replying_receiver(vec![reply]);
    crate::config::alertmanager_url(&format!("http://{addr}")).unwrap()
}

#[tokio::test]
async fn a_reply_then_a_close_is_delivered() {
    for reply in [
        &b"HTTP/1.0 200 OK\r\n\r\n"[..],
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    ] {
        let am = receiver(reply);
        let r = send::post(&am, bytes::Bytes::from_static(b"[]")).await;
        assert!(r.is_ok(), "{}: {r:?}", String::from_utf8_lossy(reply));
    }
}

#[tokio::test]
async fn a_close_before_the_reply_and_an_error_status_are_failures() {
    let am = receiver(b"");
    let e = send::post(&am, bytes::Bytes::from_static(b"[]"))
        .await
        .unwrap_err();
    assert!(matches!(e, send::PostError::Closed), "{e:?}");
    let am = receiver(b"HTTP/1.0 400 Bad Request\r\n\r\nbad alert\n");
    let e = send::post(&am, bytes::Bytes::from_static(b"[]"))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "answered 400 Bad Request: bad alert");
}
