//! Connection reports are private by default: `landmark_service` records
//! who is connected with the defaults, and inside a network namespace this
//! test makes (its loopback interface also given 192.0.2.1), a report
//! asked from loopback is answered, one asked from 192.0.2.1 gets error 9
//! `not_allowed`, while the landmark check from there passes; with
//! `--connections-allow 192.0.2.0/24` that source reads them too.

/// Runs the service (with `extra` flags) and the probes in a fresh
/// network namespace; what the script printed.
fn in_namespace(extra: &str) -> Option<String> {
    let script = format!(
        r#"set -u
ip link set lo up
ip addr add 192.0.2.1/32 dev lo || exit 90
"$0" --listen 192.0.2.1:7000 --health 0.0.0.0:9100 --connections-period 50 {extra} 2>/dev/null &
svc=$!
i=0
until "$1" tcp 127.0.0.1:9100 >/dev/null 2>&1; do
  i=$((i+1)); if [ $i -gt 100 ]; then echo "never listened"; kill $svc; exit 91; fi
  sleep 0.05
done
sleep 0.3
"$1" connections 127.0.0.1:9100 >/dev/null 2>&1; echo "loopback=$?"
"$1" connections 192.0.2.1:9100 2>&1 | head -1; echo "remote=$?"
"$1" connections 192.0.2.1:9100 >/dev/null 2>&1; echo "remote_code=$?"
"$1" 192.0.2.1:9100 --expect ok >/dev/null 2>&1; echo "check=$?"
kill $svc
"#
    );
    let service = test_support::built("landmark_service");
    let probe = test_support::built("health-probe");
    let out = test_support::in_new_netns(
        "sh",
        &[
            "-c",
            &script,
            service.to_str().unwrap(),
            probe.to_str().unwrap(),
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_ne!(out.status.code(), Some(90), "cannot add 192.0.2.1: {text}");
    Some(text)
}

#[test]
fn reports_are_for_loopback_unless_allowed() {
    let Some(said) = in_namespace("") else { return };
    assert!(said.contains("loopback=0\n"), "{said}");
    assert!(said.contains("not_allowed"), "{said}");
    assert!(said.contains("remote_code=1\n"), "{said}");
    // The balancers' landmark check is not affected.
    assert!(said.contains("check=0\n"), "{said}");

    let Some(said) = in_namespace("--connections-allow 192.0.2.0/24") else {
        return;
    };
    assert!(said.contains("loopback=0\n"), "{said}");
    assert!(said.contains("remote_code=0\n"), "{said}");
    assert!(!said.contains("not_allowed"), "{said}");
}
