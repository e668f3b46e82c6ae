use super::*;
use crate::alarm::Alarm;
use crate::registry::{Row, Status};

fn status(name: &str, alarm: Alarm) -> Arc<Status> {
    Arc::new(Status {
        name: name.into(),
        kind: "tcp",
        addr: "127.0.0.1:1".into(),
        parents: Vec::new(),
        row: Mutex::new(Row {
            alarm,
            last: None,
            alarms: 0,
            checks: [0; 4],
            hours: Default::default(),
            recent: Default::default(),
            marked: Default::default(),
            held: None,
            remind: None,
            path: None,
        }),
    })
}

#[test]
fn the_live_table_shows_flapping_targets_after_alarms() {
    let now = SystemTime::now();
    let registry = Registry::new();
    let output = Output::new(Mode::Live, registry.clone());
    registry.set_targets(vec![
        status("calm", Alarm::new(None)),
        status("flappy", Alarm::new(None).still_flapping(now)),
        status("down", Alarm::new(Some(now))),
    ]);
    let mut screen = Vec::new();
    output.draw(&mut screen).unwrap();
    let screen = String::from_utf8_lossy(&screen);
    assert!(
        screen.contains("1 in alarm, 1 flapping, 0 paused"),
        "{screen}"
    );
    let at = |name: &str| screen.find(name).unwrap();
    assert!(
        at("down") < at("flappy") && at("flappy") < at("calm"),
        "{screen}"
    );
    let row = screen[at("flappy")..].split('\x1b').next().unwrap();
    assert!(row.contains("flapping"), "{row}");
}

#[test]
fn the_live_table_says_why_a_raise_is_held() {
    let now = SystemTime::now();
    let registry = Registry::new();
    let output = Output::new(Mode::Live, registry.clone());
    let held = |name: &str, hold| {
        let s = status(name, Alarm::new(Some(now)));
        s.row().held = Some(hold);
        s
    };
    registry.set_targets(vec![
        held("behind", crate::event::Hold::Unreachable),
        held("patched", crate::event::Hold::Silence(7)),
    ]);
    let mut screen = Vec::new();
    output.draw(&mut screen).unwrap();
    let screen = String::from_utf8_lossy(&screen);
    let row = |name: &str| {
        let at = screen.find(name).unwrap();
        screen[at..].split('\x1b').next().unwrap().to_string()
    };
    assert!(row("behind").contains("ALARM (unreachable)"), "{screen}");
    assert!(row("patched").contains("ALARM (silenced)"), "{screen}");
}
