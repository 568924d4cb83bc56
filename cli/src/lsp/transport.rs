//! The server's end of the editor's pipe: lsp-server's framing and messages over standard input
//! and output, read through [`Bounded`], which refuses a header line or a message over a limit
//! before anything is allocated for it. lsp-server's own stdio transport sizes its buffer from
//! the `Content-Length` header as given: `Content-Length: 4000000000` made `nnc lsp` take 3.9 GB
//! before it found the message missing.

use std::io::{self, BufRead, Read};
use std::thread::{self, JoinHandle};

use crossbeam_channel::bounded;
use lsp_server::{Connection, Message};
use nnc_compiler::MAX_FILE_BYTES;

/// The largest message taken: a whole document of the largest file the checker reads, every
/// byte escaped in JSON (`\u0000`, six bytes), and room for the rest of the message.
pub(crate) const MAX_MESSAGE_BYTES: u64 = 6 * MAX_FILE_BYTES + (1 << 20);

/// The longest header line taken (`Content-Length: …` and `Content-Type: …` are short).
const MAX_HEADER_LINE: u64 = 4096;

/// A reader of framed messages that refuses, as invalid data, a header line longer than
/// [`MAX_HEADER_LINE`] and a `Content-Length` over `max`.
pub(crate) struct Bounded<R> {
    inner: R,
    max: u64,
}

impl<R: BufRead> Bounded<R> {
    pub(crate) fn new(inner: R, max: u64) -> Self {
        Bounded { inner, max }
    }
}

impl<R: BufRead> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: BufRead> BufRead for Bounded<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount)
    }

    /// lsp-server reads the headers line by line, then allocates the body's length at once:
    /// both are checked here, where the header is read.
    fn read_line(&mut self, line: &mut String) -> io::Result<usize> {
        let mut bytes = Vec::new();
        let read = (&mut self.inner).take(MAX_HEADER_LINE + 1).read_until(b'\n', &mut bytes)?;
        if read as u64 > MAX_HEADER_LINE {
            return Err(invalid(format!("a header line over {MAX_HEADER_LINE} bytes")));
        }
        let text = String::from_utf8(bytes).map_err(|_| invalid("a header line that is not UTF-8".into()))?;
        if let Some((name, value)) = text.trim_end().split_once(':') {
            if name.eq_ignore_ascii_case("Content-Length") {
                match value.trim().parse::<u64>() {
                    Ok(length) if length > self.max => {
                        return Err(invalid(format!(
                            "a message of {length} bytes, over the limit of {}",
                            self.max
                        )))
                    }
                    _ => {}
                }
            }
        }
        line.push_str(&text);
        Ok(read)
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("nnc lsp refuses {what}"))
}

/// The threads that move messages between the pipes and the connection's channels.
pub(crate) struct IoThreads {
    reader: JoinHandle<io::Result<()>>,
    writer: JoinHandle<io::Result<()>>,
}

impl IoThreads {
    /// Waits for both; the reader's error (a refused or malformed message) first.
    pub(crate) fn join(self) -> io::Result<()> {
        let reader = self.reader.join().unwrap_or_else(|_| Err(io::Error::other("the reader panicked")));
        let writer = self.writer.join().unwrap_or_else(|_| Err(io::Error::other("the writer panicked")));
        reader.and(writer)
    }
}

/// A connection over standard input and output, as `Connection::stdio`, its input bounded.
pub(crate) fn stdio() -> (Connection, IoThreads) {
    let (to_writer, from_server) = bounded::<Message>(0);
    let writer = thread::spawn(move || {
        let mut stdout = io::stdout().lock();
        from_server.into_iter().try_for_each(|message| message.write(&mut stdout))
    });
    let (to_server, from_reader) = bounded::<Message>(0);
    let reader = thread::spawn(move || {
        let mut stdin = Bounded::new(io::stdin().lock(), MAX_MESSAGE_BYTES);
        while let Some(message) = Message::read(&mut stdin)? {
            let exit = matches!(&message, Message::Notification(n) if n.method == "exit");
            if to_server.send(message).is_err() || exit {
                break;
            }
        }
        Ok(())
    });
    (Connection { sender: to_writer, receiver: from_reader }, IoThreads { reader, writer })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str, max: u64) -> io::Result<Option<Message>> {
        Message::read(&mut Bounded::new(input.as_bytes(), max))
    }

    #[test]
    fn messages_within_the_limits_are_read_as_lsp_server_reads_them() {
        let body = r#"{"jsonrpc":"2.0","method":"exit"}"#;
        let framed = format!("Content-Length: {}\r\nContent-Type: x\r\n\r\n{body}", body.len());
        let message = read(&framed, 1000).unwrap().unwrap();
        assert!(matches!(message, Message::Notification(n) if n.method == "exit"));
        assert!(read("", 1000).unwrap().is_none());
    }

    #[test]
    fn a_length_over_the_limit_or_a_long_header_is_refused_before_reading() {
        let err = read("Content-Length: 4000000000\r\n\r\n{}", MAX_MESSAGE_BYTES).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("a message of 4000000000 bytes, over the limit"), "{err}");
        let long = format!("X-Padding: {}\r\n", "a".repeat(10_000));
        let err = read(&long, MAX_MESSAGE_BYTES).unwrap_err();
        assert!(err.to_string().contains("a header line over 4096 bytes"), "{err}");
    }
}
