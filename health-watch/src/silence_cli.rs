//! `health-probe silence add|list|remove`: silences written to (and read
//! from) the watcher's history database, where the running watcher picks
//! them up within a second (`silencer`).

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use health_probe::cli::{SilenceAdd, SilenceArgs, SilenceCommand, SilenceList};
use health_probe::text::shown;

use crate::error::Error;
use crate::history::database_for;
use crate::silence::{self, Origin, Silence, SilenceView, MAX_ACTIVE};
use crate::store::{self, silences};

/// Runs one `health-probe silence` command.
pub fn run(args: &SilenceArgs) -> Result<(), Error> {
    let fail = |e: String| Error::Silence(e);
    let database = database_for(args.database.as_deref(), args.config.as_deref()).map_err(fail)?;
    let now = store::round_ms(SystemTime::now());
    let mut out = std::io::stdout().lock();
    let written = match &args.command {
        SilenceCommand::Add(add) => {
            let line = self::add(&database, args.config.as_deref(), add, now).map_err(fail)?;
            writeln!(out, "{line}")
        }
        SilenceCommand::List(list) => self::list(&database, list, now, &mut out).map_err(fail)?,
        SilenceCommand::Remove(r) => {
            let conn = open_existing(&database)?;
            let gone = silences::remove(&conn, r.id, now)
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("no silence {} in force or to come", r.id)))?;
            writeln!(out, "silence {} removed: {}", gone.id, describe(&gone))
        }
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(fail(e.to_string())),
        _ => Ok(()),
    }
}

/// The database a silence is written to: it must exist (a typo in
/// `--database` makes no stray history).
fn open_existing(database: &Path) -> Result<rusqlite::Connection, Error> {
    if !database.exists() {
        return Err(Error::Silence(format!(
            "database {} does not exist: give the watcher's (--config CONFIG or --database FILE)",
            database.display()
        )));
    }
    store::open(database).map_err(|e| Error::Silence(e.to_string()))
}

fn add(
    database: &Path,
    config: Option<&Path>,
    a: &SilenceAdd,
    now: SystemTime,
) -> Result<String, String> {
    let from = match &a.from {
        Some(t) => silence::parse_time(t, now).map_err(|e| format!("--from {e}"))?,
        None => now,
    };
    let until = match (&a.until, a.duration) {
        (Some(t), _) => silence::parse_time(t, now).map_err(|e| format!("--until {e}"))?,
        (None, Some(d)) => from + d,
        (None, None) => return Err("give --for or --until".into()),
    };
    let (from, until) = (store::round_ms(from), store::round_ms(until));
    silence::check_new(&a.matcher, &a.reason, from, until)?;
    let mut notes = Vec::new();
    if let Some(path) = config {
        if let Ok(c) = crate::config::load(path) {
            let m = silence::Matcher::new(&a.matcher);
            let n = c.targets.iter().filter(|t| m.matches(&t.name)).count();
            notes.push(match n {
                0 => format!("warning: it matches no target of {} (yet)", path.display()),
                1 => "it matches 1 target".to_string(),
                n => format!("it matches {n} targets"),
            });
        }
    }
    let conn = open_existing(database).map_err(|e| e.to_string())?;
    if until > now && silences::count_active(&conn, now).map_err(|e| e.to_string())? >= MAX_ACTIVE {
        return Err(format!(
            "{MAX_ACTIVE} silences are in force or to come already: remove some first"
        ));
    }
    let s = Silence {
        id: 0,
        matcher: a.matcher.clone(),
        from,
        until,
        reason: a.reason.clone(),
        author: author(a.author.as_deref()),
        origin: Origin::Cli,
        created: now,
    };
    let id = silences::insert(&conn, &s).map_err(|e| e.to_string())?;
    let past = if until <= now {
        "; it is over already: the report and uptime count that stretch as maintenance"
    } else {
        ""
    };
    let notes = notes.iter().map(|n| format!("; {n}")).collect::<String>();
    Ok(format!(
        "silence {id} added: {}{past}{notes}",
        describe(&Silence { id, ..s })
    ))
}

/// Who asks: `--author`, else `$SUDO_USER`, else `$USER`; cut and made
/// printable (it is shown on the page and in the list).
fn author(given: Option<&str>) -> String {
    let name = given
        .map(str::to_string)
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    health_probe::text::cut(&name, 64).to_string()
}

/// One line about `s`, escaped for the terminal.
fn describe(s: &Silence) -> String {
    format!(
        "{} from {} until {} ({})",
        shown(&s.matcher),
        humantime::format_rfc3339_seconds(s.from),
        humantime::format_rfc3339_seconds(s.until),
        shown(&s.reason)
    )
}

fn list(
    database: &Path,
    l: &SilenceList,
    now: SystemTime,
    out: &mut impl Write,
) -> Result<std::io::Result<()>, String> {
    let conn = store::open_read_only(database).map_err(|e| e.to_string())?;
    let found = if l.all {
        let since = now.checked_sub(l.since).unwrap_or(SystemTime::UNIX_EPOCH);
        let far = now + silence::MAX_SILENCE * 2;
        silences::within(&conn, since, far, 100_000)
    } else {
        silences::active(&conn, now, MAX_ACTIVE)
    }
    .map_err(|e| e.to_string())?;
    if l.json {
        let views: Vec<SilenceView> = found.iter().map(|s| SilenceView::of(s, now)).collect();
        let text = serde_json::to_string_pretty(&views).map_err(|e| e.to_string())?;
        return Ok(writeln!(out, "{text}"));
    }
    if found.is_empty() {
        return Ok(writeln!(out, "no silences"));
    }
    let columns = ["ID", "TARGET", "FROM", "UNTIL", "STATE", "BY", "REASON"]
        .map(health_probe::table::Column::left);
    let mut layout = health_probe::table::Layout::new(&columns);
    let cells = |s: &Silence| {
        let state = if s.in_force(now) {
            "in force"
        } else if s.from > now {
            "to come"
        } else {
            "ended"
        };
        let by = match &s.origin {
            Origin::Window(name) => format!("maintenance {name}"),
            _ => s.author.clone(),
        };
        [
            s.id.to_string(),
            shown(&s.matcher).into_owned(),
            humantime::format_rfc3339_seconds(s.from).to_string(),
            humantime::format_rfc3339_seconds(s.until).to_string(),
            state.to_string(),
            shown(&by).into_owned(),
            shown(&health_probe::text::cut(&s.reason, 120)).into_owned(),
        ]
    };
    for s in &found {
        layout.measure(&cells(s));
    }
    Ok((|| {
        layout.header(out)?;
        for s in &found {
            layout.row(out, &cells(s))?;
        }
        Ok(())
    })())
}
