//! The config as a user writes it: defaults, errors in file order, sameness.

use super::*;
use health_proto::State;

/// Every error of `text`, as shown: also for the other config modules' tests.
pub(super) fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn defaults_fill_in_and_targets_override() {
    let c = parse(
        r#"
database = "/tmp/x.db"
[defaults]
interval = "5s"
fall = 3

[[target]]
name = "a"
kind = "landmark"
addr = "127.0.0.1:9100"
expect = ["ok", "degraded"]

[[target]]
name = "b"
kind = "tcp"
addr = "127.0.0.1:25"
expect_banner = "220 "
fall = 1
interval = "1s"

[[target]]
name = "c"
kind = "ping"
host = "::1"
"#,
    )
    .unwrap();
    assert_eq!(c.database, PathBuf::from("/tmp/x.db"));
    assert_eq!(c.max_in_flight, 256);
    let [a, b, p] = &c.targets[..] else { panic!() };
    assert_eq!((a.interval, a.fall, a.rise), (Duration::from_secs(5), 3, 2));
    assert!(
        matches!(&a.check, Check::Landmark(spec) if spec.expect == [State::Ok, State::Degraded])
    );
    assert_eq!((b.interval, b.fall), (Duration::from_secs(1), 1));
    assert!(matches!(&b.check, Check::Tcp(t) if t.expect_banner.as_ref().unwrap().0 == b"220 "));
    assert_eq!(
        (p.timeout, p.pause_after_errors),
        (Duration::from_secs(2), 4)
    );
    assert!(matches!(&p.check, Check::Ping(args) if args.count == 3 && args.host == "::1"));
}

#[test]
fn errors_name_their_line() {
    let e = errors(
        "[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"soon\"\n",
    );
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("line 5, column 12:"), "{e:?}");
    let e = errors("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\nflal = 2\n");
    assert!(
        e[0].starts_with("line 5,") && e[0].contains("unknown field `flal`"),
        "{e:?}"
    );
    let e = errors("[[target]]\nname = \"a\"\nkind = \"smtp\"\n");
    assert!(e[0].starts_with("line 3,"), "{e:?}");
}

#[test]
fn every_semantic_error_is_reported_in_file_order() {
    let e = errors(
        r#"[[target]]
name = "a"
kind = "tcp"
addr = "no-port"
fall = 0

[[target]]
name = "a"
kind = "ping"
host = "10.0.0.1"
expect = ["ok"]

[[target]]
name = "c"
kind = "landmark"
addr = "127.0.0.1:1"
interval = "1s"
timeout = "2s"
"#,
    );
    assert_eq!(e.len(), 5, "{e:?}");
    assert!(e[0].starts_with("line 4,") && e[0].contains("not IP:PORT"));
    assert!(e[1].starts_with("line 5,") && e[1].contains("fall must be between 1"));
    assert!(e[2].starts_with("line 8,") && e[2].contains("already used on line 2"));
    assert!(e[3].starts_with("line 11,") && e[3].contains("expect applies to landmark"));
    assert!(e[4].starts_with("line 18,") && e[4].contains("longer than interval"));
}

#[test]
fn unknown_keys_bad_types_and_bad_values_all_at_once() {
    let e = errors(
        r#"databse = "/tmp/x.db"
max_in_flight = "many"

[defaults]
fal = 2

[[target]]
name = "a"
kind = "tcp"
addr = "127.0.0.1:1"
flal = 2
rsie = 3

[[target]]
name = "b"
kind = "tcp"
addr = "nowhere"
fall = "two"

[[target]]
name = "c"
kind = "ping"
host = "::1"
"#,
    );
    let at: Vec<&str> = e.iter().map(|e| e.split(':').next().unwrap()).collect();
    assert_eq!(
        at,
        [
            "line 1, column 1",
            "line 2, column 17",
            "line 5, column 1",
            "line 11, column 1",
            "line 12, column 1",
            "line 17, column 8",
            "line 18, column 8"
        ],
        "{e:#?}"
    );
    assert!(e[0].contains("databse") && e[3].contains("flal") && e[4].contains("rsie"));
    assert!(e[5].contains("not IP:PORT"), "{e:#?}");
}

#[test]
fn a_database_that_is_a_folder_is_refused() {
    let dir = std::env::temp_dir();
    let text = format!(
        "database = {:?}\n[[target]]\nname = \"a\"\nkind = \"ping\"\nhost = \"::1\"\n",
        dir.display().to_string()
    );
    let e = errors(&text);
    assert!(
        e[0].starts_with("line 1, column 12:") && e[0].contains("is a folder"),
        "{e:?}"
    );
    let text = text.replace(
        &format!("{:?}", dir.display().to_string()),
        "\"/etc/passwd/watch.db\"",
    );
    assert!(errors(&text)[0].contains("/etc/passwd is not a folder"));
}

#[test]
fn empty_config_is_an_error() {
    assert!(errors("")[0].contains("nothing to watch"));
}

#[test]
fn written_form_decides_sameness() {
    let a = parse("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n").unwrap();
    let b = parse("# moved\n\n[defaults]\nfall = 2\n[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n").unwrap();
    let c = parse("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:2\"\n").unwrap();
    // Moved in the file, a default spelled out: the same target.
    assert!(a.targets[0].same_as(&b.targets[0]));
    assert!(!a.targets[0].same_as(&c.targets[0]));
}

#[test]
fn tls_targets_take_their_keys_and_keep_their_rules() {
    let config = parse(
        "[[target]]\nname = \"mail\"\nkind = \"tls\"\naddr = \"127.0.0.1:587\"\nstarttls = \"smtp\"\nsni = \"mail.example\"\ncert_warn = \"30d\"\ncert_crit = \"7d\"\ninsecure = true\n",
    )
    .unwrap();
    let Check::Tls(spec) = &config.targets[0].check else {
        panic!("not a tls check");
    };
    assert_eq!(spec.starttls, Some(health_probe::spec::Starttls::Smtp));
    assert_eq!(spec.sni.as_deref(), Some("mail.example"));
    assert_eq!(spec.cert_warn, Duration::from_secs(30 * 86_400));
    assert!(spec.insecure);
    assert_eq!(config.targets[0].kind, Kind::Tls);
    let e = errors(
        r#"[[target]]
name = "a"
kind = "tls"
addr = "127.0.0.1:443"
cert_warn = "2d"
cert_crit = "3d"
starttls = "gopher"
ca = "/nonexistent/ca.pem"
insecure = true

[[target]]
name = "b"
kind = "tcp"
addr = "127.0.0.1:443"
sni = "x.example"

[[target]]
name = "c"
kind = "tls"
host = "127.0.0.1"
"#,
    );
    let says = |line: usize, text: &str| {
        assert!(
            e.iter()
                .any(|m| m.starts_with(&format!("line {line},")) && m.contains(text)),
            "line {line}: {text}\n{e:#?}"
        );
    };
    says(6, "cert_crit must not be longer than cert_warn");
    says(7, "starttls: unknown STARTTLS protocol \"gopher\"");
    says(8, "give ca or insecure, not both");
    says(15, "sni applies to tls targets, not tcp");
    says(20, "host applies to ping targets, not tls");
    assert!(
        e.iter().any(|m| m.contains("tls target needs addr")),
        "{e:#?}"
    );
}

#[test]
fn jitter_is_a_share_of_the_interval_given_as_a_percentage() {
    let config = parse(
        "[defaults]\njitter = \"5%\"\n[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n[[target]]\nname = \"b\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\njitter = \"0%\"\n",
    )
    .unwrap();
    assert_eq!(config.targets[0].jitter, 5);
    assert_eq!(config.targets[1].jitter, 0);
    let plain =
        parse("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n").unwrap();
    assert_eq!(
        plain.targets[0].jitter,
        crate::schedule::DEFAULT_JITTER_PERCENT
    );
    for bad in ["\"60%\"", "\"ten\"", "\"10\""] {
        let e = errors(&format!(
            "[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\njitter = {bad}\n"
        ));
        assert!(
            e.iter()
                .any(|m| m.starts_with("line 5,") && m.contains("jitter must be a percentage")),
            "{bad}: {e:?}"
        );
    }
    // A module has no schedule.
    let e = errors("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n[module.m]\nkind = \"tcp\"\njitter = \"5%\"\n");
    assert!(
        e.iter()
            .any(|m| m.contains("jitter is a target's key, not a module's")),
        "{e:?}"
    );
}

#[test]
fn maintenance_windows_are_read_and_every_mistake_is_at_its_line() {
    let targets = r#"
[[target]]
name = "db-1"
kind = "tcp"
addr = "127.0.0.1:5432"
"#;
    let c = parse(&format!(
        r#"{targets}
[[maintenance]]
name = "sunday"
targets = ["db-*", "db-1"]
schedule = "0 2 * * SUN"
duration = "2h"

[[maintenance]]
name = "every-10s"
targets = ["*"]
schedule = "*/10 * * * * *"
duration = "3s"
reason = "test"
"#
    ))
    .unwrap();
    assert_eq!(c.maintenance.len(), 2);
    assert_eq!(c.maintenance[0].targets, ["db-*", "db-1"]);
    assert_eq!(c.maintenance[0].reason, "maintenance sunday");
    assert_eq!(c.maintenance[1].duration, Duration::from_secs(3));
    let e = errors(&format!(
        r#"{targets}
[[maintenance]]
name = "a"
targets = ["db-2"]
schedule = "0 2 * *"
duration = "0s"

[[maintenance]]
name = "a"
targets = []
schedule = "0 2 * * SUN"
duration = "40d"
owner = "ops"

[[maintenance]]
name = "b"
targets = ["db-1"]
schedule = "*/10 * * * *"
duration = "11m"
"#
    ));
    let want = [
        "line 9, column 12: no target is named \"db-2\"",
        "line 10, column 12: schedule \"0 2 * *\" has 4 fields",
        "line 11, column 12: duration must be from 1s to 31d",
        "line 14, column 8: maintenance a is given twice",
        "line 15, column 11: targets must name at least one target or pattern",
        "line 17, column 12: duration must be from 1s to 31d",
        "line 18, column 1: unknown field `owner`",
        "line 24, column 12: duration 11m is longer than the time between openings (10m): they would overlap",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for (w, got) in want.iter().zip(&e) {
        assert!(got.starts_with(w), "{got} (wanted {w}); all: {e:#?}");
    }
}

#[test]
fn depends_on_names_other_targets_and_makes_no_cycle() {
    let t = |name: &str, deps: &str| {
        format!("[[target]]\nname = \"{name}\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ndepends_on = {deps}\n")
    };
    let c = parse(&format!("{}{}", t("gw", "[]"), t("app", "[\"gw\"]"))).unwrap();
    assert_eq!(c.targets[1].depends_on, ["gw"]);
    let e = errors(&format!(
        "{}{}{}{}{}",
        t("a", "[\"b\"]"),
        t("b", "[\"c\"]"),
        t("c", "[\"a\"]"),
        t("d", "[\"d\", \"nobody\"]"),
        t("e", "[\"a\"]"),
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].contains("depends_on makes a cycle: a -> b -> c -> a"),
        "{e:#?}"
    );
    assert!(e[1].contains("a target cannot depend on itself"), "{e:#?}");
    assert!(e[2].contains("no target is named \"nobody\""), "{e:#?}");
    // Not a module's key.
    let e = errors(&format!(
        "{}[module.m]\nkind = \"tcp\"\ndepends_on = [\"a\"]\n",
        t("a", "[]")
    ));
    assert!(e[0].contains("depends_on is a target's key"), "{e:#?}");
}

#[test]
fn reminders_are_read_from_a_target_or_the_defaults_and_checked() {
    let c = parse(
        r#"
[defaults]
remind_every = "1h"
on_remind = "page-again"

[[target]]
name = "a"
kind = "tcp"
addr = "127.0.0.1:1"
max_reminders = 3
remind_alertmanager = true

[[target]]
name = "b"
kind = "tcp"
addr = "127.0.0.1:1"
"#,
    )
    .unwrap();
    let (a, b) = (&c.targets[0].remind, &c.targets[1].remind);
    assert_eq!(a.every, Some(Duration::from_secs(3600)));
    assert_eq!((a.max, a.alertmanager), (Some(3), true));
    assert_eq!(b.command.as_deref(), Some("page-again"));
    assert_eq!((b.max, b.alertmanager), (None, false));
    let e = errors(
        r#"alertmanager_url = "http://127.0.0.1:9093"
alertmanager_labels = { reminder = "x" }
[[target]]
name = "a"
kind = "tcp"
addr = "127.0.0.1:1"
remind_every = "500ms"
max_reminders = 0
on_remind = " "
"#,
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].contains("label reminder is set by the watcher"),
        "{e:#?}"
    );
    assert!(e[1].contains("on_remind is empty"), "{e:#?}");
    assert!(
        e[2].contains("remind_every must be between 1s and 30days"),
        "{e:#?}"
    );
    assert!(
        e[3].contains("max_reminders must be between 1 and 10000"),
        "{e:#?}"
    );
}

#[test]
fn vantage_points_come_from_sources_and_watchers_and_vote_by_majority() {
    let c = parse(
        r#"
[defaults]
vantage = ["local", "http://site-b:9115", "http://site-c:9115/watch/"]
[[target]]
name = "plain"
kind = "tcp"
addr = "127.0.0.1:25"
vantage = ["local"]
[[target]]
name = "three"
kind = "landmark"
addr = "127.0.0.1:9100"
vantage_module = "serving"
on_path = "logger path"
[[target]]
name = "uplinks"
kind = "tcp"
addr = "127.0.0.1:25"
vantage = ["local"]
source = ["eth1", "192.0.2.10"]
source_mode = "all"
quorum = 1
"#,
    )
    .unwrap();
    assert!(c.targets[0].vantage.is_none());
    let v = c.targets[1].vantage.as_ref().unwrap();
    assert_eq!(
        v.names,
        ["local", "http://site-b:9115", "http://site-c:9115/watch"]
    );
    assert_eq!((v.quorum, v.on_path.as_deref()), (2, Some("logger path")));
    let v = c.targets[2].vantage.as_ref().unwrap();
    assert_eq!(v.names, ["local:eth1", "local:192.0.2.10"]);
    assert_eq!((v.quorum, v.mode), (1, crate::vantage::SourceMode::All));
}

#[test]
fn vantage_keys_that_cannot_work_are_errors_at_their_line() {
    let e = errors(
        r#"
[[target]]
name = "a"
kind = "tcp"
addr = "127.0.0.1:25"
source = ["eth1", "a/b", "eth1"]
source_mode = "sometimes"
quorum = 4
[[target]]
name = "b"
kind = "tcp"
addr = "127.0.0.1:25"
vantage = ["local", "local", "https://b:9115", "site-c"]
[[target]]
name = "c"
kind = "tcp"
addr = "127.0.0.1:25"
source = ["eth1"]
vantage = ["http://b:9115"]
vantage_module = "x y"
on_path = "true"
[[target]]
name = "d"
kind = "tcp"
addr = "127.0.0.1:25"
on_path = "true"
vantage_module = "m"
source_mode = "all"
"#,
    );
    let has = |line: usize, text: &str| {
        assert!(
            e.iter()
                .any(|m| m.starts_with(&format!("line {line},")) && m.contains(text)),
            "no {text:?} at line {line} in {e:#?}"
        )
    };
    has(6, "neither an IP address nor an interface name");
    has(6, "\"eth1\" is given twice");
    has(7, "source_mode must be \"alternate\" or \"all\"");
    has(
        8,
        "quorum must be 1 to the number of vantage points (1), not 4",
    );
    has(13, "vantage gives \"local\" twice");
    has(13, "https is not supported");
    has(13, "must start with http://");
    has(18, "source applies to the \"local\" vantage point");
    has(20, "vantage_module must be a module name");
    has(22, "on_path needs two or more vantage points");
    has(27, "vantage_module applies to remote vantage points");
    has(28, "source_mode needs two or more sources");
}
