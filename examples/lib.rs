//! What the example services share: their line protocol and the state it
//! drives. Each example's main loop owns a [`ServiceState`], applies
//! [`Command`]s to it, and answers the health endpoint's asks from it.
//!
//! The line protocol (one command per line, one reply line each):
//!
//! | command | reply | effect |
//! |---|---|---|
//! | `PING` | `PONG` | none |
//! | `SET <ok\|degraded\|drain\|fail> [detail...]` | `OK` | sets the landmark state and detail |
//! | `WEIGHT <0-253>` | `OK` | sets the landmark weight |
//! | `HANG <ms>` | `OK hung <ms>ms` (after the hang) | blocks the main loop for that long |
//! | `QUIT` | `BYE` | closes the connection |
//!
//! Anything else gets `ERR <reason>`.

use std::time::Duration;

use health_proto::{Landmark, State, Weight};

/// Longest line the services accept; longer lines get `ERR line too long`.
pub const MAX_LINE: usize = 1024;
/// Longest `HANG` accepted, so a typo cannot hang a service for a day.
pub const MAX_HANG: Duration = Duration::from_secs(600);
/// Idle time after which a client connection of the services is closed.
pub const CLIENT_IDLE: Duration = Duration::from_secs(300);

/// One parsed command of the example line protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `PING`: is the main loop serving?
    Ping,
    /// `SET <state> [detail]`: the landmark to answer.
    Set(State, String),
    /// `WEIGHT n`: the weight to answer.
    Weight(Weight),
    /// `HANG ms`: block the main loop this long.
    Hang(Duration),
    /// `QUIT`: close this client's connection.
    Quit,
}

impl Command {
    /// Parses one line (without its line ending).
    pub fn parse(line: &str) -> Result<Command, String> {
        let line = line.trim();
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match word.to_ascii_uppercase().as_str() {
            "PING" => Ok(Command::Ping),
            "QUIT" => Ok(Command::Quit),
            "SET" => {
                let (state, detail) = rest.split_once(' ').unwrap_or((rest, ""));
                let state: State = state.parse().map_err(|e| format!("{e}"))?;
                Ok(Command::Set(state, detail.trim().to_string()))
            }
            "WEIGHT" => {
                let w: u8 = rest
                    .parse()
                    .map_err(|_| format!("weight {rest:?} is not a number 0-253"))?;
                Weight::new(w)
                    .map(Command::Weight)
                    .map_err(|e| e.to_string())
            }
            "HANG" => {
                let ms: u64 = rest
                    .parse()
                    .map_err(|_| format!("HANG takes milliseconds, not {rest:?}"))?;
                let d = Duration::from_millis(ms);
                if d > MAX_HANG {
                    return Err(format!("HANG is limited to {}ms", MAX_HANG.as_millis()));
                }
                Ok(Command::Hang(d))
            }
            "" => Err("empty line".into()),
            other => Err(format!("unknown command {other:?}")),
        }
    }
}

/// The service's own state, kept by its main loop.
#[derive(Debug, Clone)]
pub struct ServiceState {
    state: State,
    detail: String,
    weight: Option<Weight>,
    commands: u64,
}

impl Default for ServiceState {
    fn default() -> ServiceState {
        ServiceState {
            state: State::Ok,
            detail: "serving".into(),
            weight: None,
            commands: 0,
        }
    }
}

impl ServiceState {
    /// Applies a command that changes state and returns the reply line.
    /// `HANG` and `QUIT` are the main loop's business; this only counts them.
    pub fn apply(&mut self, cmd: &Command) -> String {
        self.commands += 1;
        match cmd {
            Command::Ping => "PONG".into(),
            Command::Set(state, detail) => {
                self.state = *state;
                self.detail = detail.clone();
                "OK".into()
            }
            Command::Weight(w) => {
                self.weight = Some(*w);
                "OK".into()
            }
            Command::Hang(d) => format!("OK hung {}ms", d.as_millis()),
            Command::Quit => "BYE".into(),
        }
    }

    /// The landmark the main loop answers with.
    pub fn landmark(&self, clients: usize) -> Landmark {
        let mut l = Landmark::new(self.state, self.detail.clone())
            .with_field("clients", clients)
            .with_field("commands", self.commands);
        l.weight = self.weight;
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_line_protocol() {
        assert_eq!(Command::parse("PING"), Ok(Command::Ping));
        assert_eq!(
            Command::parse("SET degraded replica lag 12s"),
            Ok(Command::Set(State::Degraded, "replica lag 12s".into()))
        );
        assert_eq!(
            Command::parse("set ok"),
            Ok(Command::Set(State::Ok, String::new()))
        );
        assert_eq!(
            Command::parse("WEIGHT 253"),
            Ok(Command::Weight(Weight::new(253).unwrap()))
        );
        assert!(Command::parse("WEIGHT 254").is_err());
        assert_eq!(
            Command::parse("HANG 1500"),
            Ok(Command::Hang(Duration::from_millis(1500)))
        );
        assert!(Command::parse("HANG 600001").is_err());
        assert!(Command::parse("SET great").is_err());
        assert!(Command::parse("FLY").is_err());
        assert!(Command::parse("").is_err());
    }
}
