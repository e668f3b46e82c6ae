//! The plain-text dialog before TLS on a STARTTLS port, as a state machine
//! with no I/O of its own ([`Dialog`]): it says what to send and when to
//! read, and is told what was read, so the blocking check and the one on
//! tokio drive the same dialog. Each protocol's steps are those of the
//! RFC that defines its upgrade:
//!
//! | protocol | greeting | upgrade | ready |
//! |---|---|---|---|
//! | smtp (RFC 3207) | `220` | `EHLO`, then `STARTTLS` | `220` |
//! | imap (RFC 3501) | `* OK` | `a1 STARTTLS` | `a1 OK` |
//! | pop3 (RFC 2595) | `+OK` | `STLS` | `+OK` |
//! | ftp (RFC 4217) | `220` | `AUTH TLS` | `234` |
//! | xmpp (RFC 6120) | (the client opens the stream) | `<starttls/>` | `<proceed/>` |
//! | postgres (protocol 3.0) | (none) | `SSLRequest` | `S` |
//!
//! The server's text is bounded ([`MAX_DIALOG`]) and quoted when it says
//! no.

use crate::spec::Starttls;

/// Most bytes of the server's side of the dialog kept.
pub(crate) const MAX_DIALOG: usize = 16 * 1024;

/// What the dialog needs next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Write these bytes, then ask again ([`Dialog::sent`]).
    Send(Vec<u8>),
    /// Read what comes and hand it to [`Dialog::received`].
    Read,
    /// The server is ready: start the TLS handshake.
    Ready,
    /// The server said no, or said something else (why, its words quoted).
    Refused(String),
}

/// Where a dialog stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing sent yet.
    Start,
    /// Waiting for the greeting (or, xmpp, the stream's features).
    Greeting,
    /// smtp: waiting for the EHLO reply.
    Ehlo,
    /// Waiting for the answer to the upgrade command.
    Upgrade,
}

/// One STARTTLS dialog.
#[derive(Debug)]
pub(crate) struct Dialog {
    protocol: Starttls,
    /// The name given to the server (EHLO, the xmpp stream's `to`).
    host: String,
    step: Step,
    /// What the server sent since the last complete answer.
    pending: Vec<u8>,
}

impl Dialog {
    /// A dialog of `protocol` with the server named `host`.
    pub(crate) fn new(protocol: Starttls, host: &str) -> Dialog {
        Dialog {
            protocol,
            host: host.to_string(),
            step: Step::Start,
            pending: Vec::new(),
        }
    }

    /// The first thing to do.
    pub(crate) fn start(&mut self) -> Next {
        match self.protocol {
            Starttls::Xmpp => {
                self.step = Step::Greeting;
                Next::Send(
                    format!(
                        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                         xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
                        xml_escaped(&self.host)
                    )
                    .into_bytes(),
                )
            }
            Starttls::Postgres => {
                self.step = Step::Upgrade;
                // SSLRequest: length 8, code 80877103.
                Next::Send(vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            }
            _ => {
                self.step = Step::Greeting;
                Next::Read
            }
        }
    }

    /// What to do once the last [`Next::Send`] is written.
    pub(crate) fn sent(&mut self) -> Next {
        Next::Read
    }

    /// Takes what was read (empty: the server closed) and says what next.
    pub(crate) fn received(&mut self, bytes: &[u8]) -> Next {
        if bytes.is_empty() {
            return Next::Refused(format!(
                "{} server closed the connection during STARTTLS{}",
                self.protocol,
                self.said()
            ));
        }
        if self.pending.len() + bytes.len() > MAX_DIALOG {
            return Next::Refused(format!(
                "{} server sent over {MAX_DIALOG} bytes without the answer STARTTLS needs",
                self.protocol
            ));
        }
        self.pending.extend_from_slice(bytes);
        match self.protocol {
            Starttls::Postgres => self.postgres(),
            Starttls::Xmpp => self.xmpp(),
            _ => self.lines(),
        }
    }

    /// smtp, imap, pop3, ftp: answers are lines; act on the final one.
    fn lines(&mut self) -> Next {
        let Some(line) = self.final_line() else {
            return Next::Read;
        };
        let (ok, next): (&[&str], Option<&str>) = match (self.protocol, self.step) {
            (Starttls::Smtp, Step::Greeting) => (&["220"], Some("EHLO health-probe\r\n")),
            (Starttls::Smtp, Step::Ehlo) => (&["250"], Some("STARTTLS\r\n")),
            (Starttls::Smtp | Starttls::Ftp, Step::Upgrade) => (
                &[if self.protocol == Starttls::Smtp {
                    "220"
                } else {
                    "234"
                }],
                None,
            ),
            (Starttls::Ftp, _) => (&["220"], Some("AUTH TLS\r\n")),
            (Starttls::Imap, Step::Greeting) => (&["* OK", "* PREAUTH"], Some("a1 STARTTLS\r\n")),
            (Starttls::Imap, _) => (&["a1 OK"], None),
            (Starttls::Pop3, Step::Greeting) => (&["+OK"], Some("STLS\r\n")),
            (_, _) => (&["+OK"], None),
        };
        if !ok.iter().any(|p| line.starts_with(p)) {
            return Next::Refused(format!(
                "{} server answered {} {}",
                self.protocol,
                crate::text::quoted(line.trim_end()),
                match self.step {
                    Step::Greeting => "as its greeting",
                    Step::Ehlo => "to EHLO",
                    _ => "to STARTTLS",
                }
            ));
        }
        self.pending.clear();
        match next {
            None => Next::Ready,
            Some(command) => {
                self.step = match (self.protocol, self.step) {
                    (Starttls::Smtp, Step::Greeting) => Step::Ehlo,
                    _ => Step::Upgrade,
                };
                Next::Send(command.as_bytes().to_vec())
            }
        }
    }

    /// The last complete line of a complete answer, if one is in: for
    /// smtp and ftp a multi-line answer (`250-...`) ends at the line whose
    /// code is followed by a space; imap skips untagged lines (`* ...`)
    /// after its greeting.
    fn final_line(&self) -> Option<&str> {
        let text = std::str::from_utf8(&self.pending).ok().or_else(|| {
            // Take the valid part; a later read may finish a character.
            let valid = std::str::from_utf8(&self.pending).err()?.valid_up_to();
            std::str::from_utf8(&self.pending[..valid]).ok()
        })?;
        let complete = &text[..text.rfind('\n')? + 1];
        complete.lines().find(|line| match self.protocol {
            Starttls::Smtp | Starttls::Ftp => line.as_bytes().get(3).is_none_or(|c| *c != b'-'),
            Starttls::Imap if self.step == Step::Upgrade => !line.starts_with("* "),
            _ => true,
        })
    }

    fn xmpp(&mut self) -> Next {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        match self.step {
            Step::Greeting if text.contains("</stream:features>") => {
                if !text.contains("urn:ietf:params:xml:ns:xmpp-tls") {
                    return Next::Refused("xmpp server does not offer STARTTLS".into());
                }
                self.pending.clear();
                self.step = Step::Upgrade;
                Next::Send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec())
            }
            Step::Upgrade if text.contains("<proceed") => Next::Ready,
            Step::Upgrade if text.contains("<failure") => {
                Next::Refused(format!("xmpp server refused STARTTLS{}", self.said()))
            }
            _ if text.contains("</stream:stream>") || text.contains("<stream:error") => {
                Next::Refused(format!("xmpp server ended the stream{}", self.said()))
            }
            _ => Next::Read,
        }
    }

    fn postgres(&mut self) -> Next {
        match self.pending.first() {
            Some(b'S') if self.pending.len() == 1 => Next::Ready,
            // Bytes after the 'S' came before the handshake: an attacker
            // in the path may have put them there (CVE-2021-23222).
            Some(b'S') => Next::Refused("postgres server sent data after accepting SSL".into()),
            Some(b'N') => Next::Refused("postgres server does not accept SSL".into()),
            _ => Next::Refused(format!(
                "postgres server answered the SSLRequest with {}",
                self.said()
            )),
        }
    }

    /// `: "what the server sent"`, cut and quoted, or nothing.
    fn said(&self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        let text = String::from_utf8_lossy(&self.pending);
        format!(
            ": {}",
            crate::text::quoted(&crate::text::cut(text.trim_end(), 200))
        )
    }
}

fn xml_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\'', "&apos;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives `protocol` against a scripted server: `answers[i]` is what it
    /// says after the client's i-th write (the first, for protocols where
    /// the server speaks first, before any write). Returns what the client
    /// wrote and how the dialog ended.
    fn drive(protocol: Starttls, answers: &[&[u8]]) -> (Vec<String>, Next) {
        let mut d = Dialog::new(protocol, "mail.example");
        let mut written = Vec::new();
        let mut answers = answers.iter();
        let mut next = d.start();
        loop {
            next = match next {
                Next::Send(bytes) => {
                    written.push(String::from_utf8_lossy(&bytes).into_owned());
                    d.sent()
                }
                Next::Read => d.received(answers.next().copied().unwrap_or(b"")),
                done => return (written, done),
            }
        }
    }

    #[test]
    fn smtp_reads_multi_line_answers_to_their_last_line() {
        let (written, end) = drive(
            Starttls::Smtp,
            &[
                b"220-mail.example ESMTP\r\n220 ",
                b"still greeting\r\n",
                b"250-mail.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                b"220 2.0.0 Ready to start TLS\r\n",
            ],
        );
        assert_eq!(written, ["EHLO health-probe\r\n", "STARTTLS\r\n"]);
        assert_eq!(end, Next::Ready);
        let (_, end) = drive(
            Starttls::Smtp,
            &[
                b"220 hi\r\n",
                b"250 ok\r\n",
                b"454 4.7.0 TLS not available\r\n",
            ],
        );
        assert_eq!(
            end,
            Next::Refused(
                "smtp server answered \"454 4.7.0 TLS not available\" to STARTTLS".into()
            )
        );
        let (_, end) = drive(Starttls::Smtp, &[b"554 go away\r\n"]);
        assert!(matches!(end, Next::Refused(m) if m.contains("as its greeting")));
    }

    #[test]
    fn imap_pop3_and_ftp_take_their_own_answers() {
        let (w, end) = drive(
            Starttls::Imap,
            &[
                b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n",
                b"* CAPABILITY IMAP4rev1\r\na1 OK Begin TLS\r\n",
            ],
        );
        assert_eq!((w, end), (vec!["a1 STARTTLS\r\n".to_string()], Next::Ready));
        let (_, end) = drive(Starttls::Imap, &[b"* OK hi\r\n", b"a1 BAD no\r\n"]);
        assert!(matches!(end, Next::Refused(_)));
        let (w, end) = drive(Starttls::Pop3, &[b"+OK POP3 ready\r\n", b"+OK go\r\n"]);
        assert_eq!((w, end), (vec!["STLS\r\n".to_string()], Next::Ready));
        let (w, end) = drive(Starttls::Ftp, &[b"220 FTP\r\n", b"234 AUTH TLS ok\r\n"]);
        assert_eq!((w, end), (vec!["AUTH TLS\r\n".to_string()], Next::Ready));
    }

    #[test]
    fn xmpp_and_postgres() {
        let (w, end) = drive(
            Starttls::Xmpp,
            &[
                b"<?xml version='1.0'?><stream:stream from='x'><stream:features>",
                b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
                b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
            ],
        );
        assert!(w[0].contains("to='mail.example'"));
        assert_eq!(w[1], "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        assert_eq!(end, Next::Ready);
        assert_eq!(drive(Starttls::Postgres, &[b"S"]).1, Next::Ready);
        assert!(matches!(
            drive(Starttls::Postgres, &[b"N"]).1,
            Next::Refused(_)
        ));
        assert!(matches!(
            drive(Starttls::Postgres, &[b"SX"]).1,
            Next::Refused(_)
        ));
    }

    #[test]
    fn a_server_that_closes_or_talks_forever_is_refused() {
        let (_, end) = drive(Starttls::Pop3, &[]);
        assert!(matches!(end, Next::Refused(m) if m.contains("closed")));
        let mut d = Dialog::new(Starttls::Smtp, "x");
        d.start();
        let chunk = [b'a'; 4096];
        let mut end = Next::Read;
        for _ in 0..5 {
            end = d.received(&chunk);
            if end != Next::Read {
                break;
            }
        }
        assert!(matches!(end, Next::Refused(m) if m.contains("over 16384 bytes")));
    }
}
