//! The server's end of the editor's pipe: LSP's framing over standard input and output, and
//! lsp-server's messages.
//!
//! The reader is nnc's own, for two reasons lsp-server's stdio transport cannot serve:
//! - It sizes its buffer from the `Content-Length` header as given: `Content-Length:
//!   4000000000` made `nnc lsp` take 3.9 GB before it found the message missing. Here a header
//!   line or a message over a limit is refused before anything is allocated for it.
//! - It ends the session on a body that is not a message. JSON-RPC asks for an answer instead
//!   (a parse error, or an invalid request), and the framing says where the next message
//!   starts, so the session goes on.

use std::io::{self, BufRead, Read, Write};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, select, Receiver};
use lsp_server::{Connection, Message};
use serde_json::{json, Value};

/// The largest message taken: a document of 16 MiB, every byte escaped in JSON (`\u0000`, six
/// bytes), and room for the rest of the message. A document over the checker's own limit
/// (`MAX_FILE_BYTES`, 2 MiB) is taken and refused with a diagnostic; only a message past this
/// one ends the session, as its framing cannot be trusted.
pub(crate) const MAX_MESSAGE_BYTES: u64 = 6 * (16 << 20) + (1 << 20);

/// The longest header line taken (`Content-Length: …` and `Content-Type: …` are short).
const MAX_HEADER_LINE: u64 = 4096;

/// What one framed body holds.
#[derive(Debug)]
pub(crate) enum Incoming {
    Message(Message),
    /// A body that is not a message: the error response it is owed, as JSON-RPC 2.0 words it
    /// (lsp-server's responses cannot carry the `null` id a parse error has).
    Refused(Value),
}

/// Reads the next framed body; `None` at the end of the input. Errors are the framing's: after
/// one, where the next message starts is unknown.
pub(crate) fn read(input: &mut impl BufRead, max: u64) -> io::Result<Option<Incoming>> {
    let mut length = None;
    for first in std::iter::once(true).chain(std::iter::repeat(false)) {
        let mut line = Vec::new();
        let read = input.by_ref().take(MAX_HEADER_LINE + 1).read_until(b'\n', &mut line)?;
        if read == 0 && first {
            return Ok(None);
        }
        if read as u64 > MAX_HEADER_LINE {
            return Err(invalid(format!("a header line over {MAX_HEADER_LINE} bytes")));
        }
        let Some(line) = line.strip_suffix(b"\n") else {
            return Err(invalid("input that ends inside a message's header".into()));
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let line =
            std::str::from_utf8(line).map_err(|_| invalid("a header line that is not UTF-8".into()))?;
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(format!("a header line without a colon: {line:?}")));
        };
        if name.trim().eq_ignore_ascii_case("Content-Length") {
            let value = value.trim();
            let bytes: u64 = value.parse().map_err(|_| invalid(format!("the Content-Length {value:?}")))?;
            if bytes > max {
                return Err(invalid(format!("a message of {bytes} bytes, over the limit of {max}")));
            }
            length = Some(bytes);
        }
    }
    let length = length.ok_or_else(|| invalid("a message without a Content-Length".into()))?;
    let mut body = Vec::new();
    input.take(length).read_to_end(&mut body)?;
    if (body.len() as u64) < length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("nnc lsp: the input ended {} bytes into a message of {length}", body.len()),
        ));
    }
    Ok(Some(parse(&body)))
}

/// A message, or the error owed to a body that is not one: JSON-RPC's -32700 where the body is
/// not JSON, -32600 where it is JSON but no request, response or notification.
fn parse(body: &[u8]) -> Incoming {
    if let Ok(message) = serde_json::from_slice::<Message>(body) {
        return Incoming::Message(message);
    }
    let (code, what, id) = match serde_json::from_slice::<Value>(body) {
        Err(e) => (-32700, format!("Parse error: {e}"), Value::Null),
        Ok(value) => {
            // The id, where the body has one a response can carry.
            let id = match value.get("id") {
                Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
                _ => Value::Null,
            };
            (-32600, "Invalid Request: not an LSP request, response or notification".into(), id)
        }
    };
    Incoming::Refused(json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": what } }))
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("nnc lsp refuses {what}"))
}

/// Writes one framed body and flushes it, as lsp-server writes its messages.
fn write_raw(out: &mut impl Write, body: &Value) -> io::Result<()> {
    let text = body.to_string();
    write!(out, "Content-Length: {}\r\n\r\n{text}", text.len())?;
    out.flush()
}

/// The threads that move messages between the pipes and the connection's channels.
pub(crate) struct IoThreads {
    reader: JoinHandle<io::Result<()>>,
    writer: JoinHandle<io::Result<()>>,
}

impl IoThreads {
    /// Waits for both; the reader's error (a refused message or broken framing) first.
    pub(crate) fn join(self) -> io::Result<()> {
        let reader = self.reader.join().unwrap_or_else(|_| Err(io::Error::other("the reader panicked")));
        let writer = self.writer.join().unwrap_or_else(|_| Err(io::Error::other("the writer panicked")));
        reader.and(writer)
    }
}

/// A connection over standard input and output, as `Connection::stdio`: its input bounded, and
/// a body that is not a message answered by the writer, without the server seeing it.
pub(crate) fn stdio() -> (Connection, IoThreads) {
    let (to_writer, from_server) = bounded::<Message>(0);
    let (to_refuse, refusals) = bounded::<Value>(0);
    let writer = thread::spawn(move || write_all(&mut io::stdout().lock(), &from_server, &refusals));
    let (to_server, from_reader) = bounded::<Message>(0);
    let reader = thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        while let Some(incoming) = read(&mut stdin, MAX_MESSAGE_BYTES)? {
            let sent = match incoming {
                Incoming::Message(message) => {
                    let exit = matches!(&message, Message::Notification(n) if n.method == "exit");
                    to_server.send(message).is_ok() && !exit
                }
                Incoming::Refused(reply) => to_refuse.send(reply).is_ok(),
            };
            if !sent {
                break;
            }
        }
        Ok(())
    });
    (Connection { sender: to_writer, receiver: from_reader }, IoThreads { reader, writer })
}

/// Writes the server's messages and the reader's refusals as they come, until the server is
/// done (its sender dropped).
fn write_all(
    out: &mut impl Write,
    messages: &Receiver<Message>,
    refusals: &Receiver<Value>,
) -> io::Result<()> {
    let mut refusals = Some(refusals);
    loop {
        // Once the reader has stopped, its closed channel would always be ready: it leaves the
        // select, and the server's messages are written until it is done.
        let Some(from_reader) = refusals else {
            return messages.iter().try_for_each(|message| message.write(out));
        };
        select! {
            recv(messages) -> message => match message {
                Ok(message) => message.write(out)?,
                Err(_) => return Ok(()),
            },
            recv(from_reader) -> reply => match reply {
                Ok(reply) => write_raw(out, &reply)?,
                Err(_) => refusals = None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_one(input: &str, max: u64) -> io::Result<Option<Incoming>> {
        read(&mut input.as_bytes(), max)
    }

    fn framed(body: &str) -> String {
        format!("Content-Length: {}\r\nContent-Type: x\r\n\r\n{body}", body.len())
    }

    #[test]
    fn messages_within_the_limits_are_read() {
        let message = read_one(&framed(r#"{"jsonrpc":"2.0","method":"exit"}"#), 1000).unwrap().unwrap();
        assert!(matches!(message, Incoming::Message(Message::Notification(n)) if n.method == "exit"));
        assert!(read_one("", 1000).unwrap().is_none());
    }

    #[test]
    fn a_length_over_the_limit_or_a_long_header_is_refused_before_reading() {
        let err = read_one("Content-Length: 4000000000\r\n\r\n{}", MAX_MESSAGE_BYTES).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("a message of 4000000000 bytes, over the limit"), "{err}");
        let long = format!("X-Padding: {}\r\n", "a".repeat(10_000));
        let err = read_one(&long, MAX_MESSAGE_BYTES).unwrap_err();
        assert!(err.to_string().contains("a header line over 4096 bytes"), "{err}");
    }

    #[test]
    fn broken_framing_is_an_error() {
        for (input, says) in [
            ("Content-Length: 10\r\n", "ends inside a message's header"),
            ("Content-Type: x\r\n\r\n{}", "without a Content-Length"),
            ("Content-Length: -3\r\n\r\n", "the Content-Length \"-3\""),
            ("Content-Length 3\r\n\r\n{}", "without a colon"),
        ] {
            let err = read_one(input, 1000).unwrap_err();
            assert!(err.to_string().contains(says), "{input:?}: {err}");
        }
        let err = read_one("Content-Length: 10\r\n\r\n{}", 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert!(err.to_string().contains("ended 2 bytes into a message of 10"), "{err}");
    }

    /// Each body that is not a message gets JSON-RPC's error, and the next one is read.
    #[test]
    fn a_body_that_is_no_message_is_answered_and_reading_goes_on() {
        let exit = r#"{"jsonrpc":"2.0","method":"exit"}"#;
        let cases = [
            ("{not json", -32700, Value::Null),
            ("\u{0}\u{1}", -32700, Value::Null),
            (r#"{"jsonrpc":"2.0","id":7,"method":5}"#, -32600, json!(7)),
            (r#"{"jsonrpc":"2.0","id":"a","params":[]}"#, -32600, json!("a")),
            ("[1,2]", -32600, Value::Null),
        ];
        for (body, code, id) in cases {
            let input = framed(body) + &framed(exit);
            let mut input = input.as_bytes();
            let Some(Incoming::Refused(reply)) = read(&mut input, 1000).unwrap() else {
                panic!("{body:?} was taken")
            };
            assert_eq!(reply["error"]["code"], code, "{body:?}: {reply}");
            assert_eq!(reply["id"], id, "{body:?}: {reply}");
            assert_eq!(reply["jsonrpc"], "2.0");
            let next = read(&mut input, 1000).unwrap().unwrap();
            assert!(
                matches!(next, Incoming::Message(Message::Notification(n)) if n.method == "exit"),
                "{body:?}"
            );
        }
        // Bytes that are not UTF-8 are not JSON either.
        let mut input: &[u8] = b"Content-Length: 2\r\n\r\n\xff\xfe";
        let Some(Incoming::Refused(reply)) = read(&mut input, 1000).unwrap() else { panic!("taken") };
        assert_eq!(reply["error"]["code"], -32700);
    }

    #[test]
    fn a_refusal_is_framed_as_lsp_server_frames_messages() {
        let mut out = Vec::new();
        write_raw(&mut out, &json!({ "id": null })).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "Content-Length: 11\r\n\r\n{\"id\":null}");
    }
}
