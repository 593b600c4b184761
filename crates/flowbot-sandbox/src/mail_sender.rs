//! A sending SMTP client for tests and the demo: it delivers a message byte for byte (so a
//! test can send ISO-2022-JP or Shift_JIS mail exactly as a Japanese mail program writes
//! it) to a receiver and reports the receiver's answer to each command, as a sending mail
//! server would see them. Dot-stuffing and line ends are done here; nothing else is
//! changed.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The receiver's answer to the end of the message (`250 …` when it took the mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub code: u16,
    pub text: String,
}

impl Delivery {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot reach the mail receiver: {0}")]
    Io(#[from] std::io::Error),
    #[error("the receiver refused `{command}`: {code} {text}")]
    Refused {
        command: String,
        code: u16,
        text: String,
    },
    #[error("the receiver gave no answer within {0:?}")]
    Timeout(Duration),
    #[error("the receiver answered something that is not SMTP: {0}")]
    Protocol(String),
}

const WAIT: Duration = Duration::from_secs(30);

/// Send `message` (headers, a blank line, the body; any line ends) from `from` to `to`
/// through the receiver at `addr`. `Ok` holds the answer to the message itself, which may
/// be a refusal (`451`, `552`…); an earlier refusal is an `Err`.
pub async fn send_mail(
    addr: &str,
    from: &str,
    to: &[&str],
    message: &[u8],
) -> Result<Delivery, SendError> {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .map_err(|_| SendError::Timeout(WAIT))??;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, "connect", 220).await?;
    command(&mut write, &mut read, "EHLO sandbox.localhost", 250).await?;
    command(&mut write, &mut read, &format!("MAIL FROM:<{from}>"), 250).await?;
    for rcpt in to {
        command(&mut write, &mut read, &format!("RCPT TO:<{rcpt}>"), 250).await?;
    }
    command(&mut write, &mut read, "DATA", 354).await?;
    write.write_all(&stuffed(message)).await?;
    let answer = answer(&mut read).await?;
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(answer)
}

/// The message with CRLF line ends, dot-stuffed, and the final `.` line.
fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    // `split` gives an empty last piece after a final newline: drop its empty line.
    if message.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out.extend_from_slice(b".\r\n");
    out
}

async fn command(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &str,
    want: u16,
) -> Result<(), SendError> {
    write.write_all(format!("{line}\r\n").as_bytes()).await?;
    expect(read, line, want).await
}

async fn expect(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    command: &str,
    want: u16,
) -> Result<(), SendError> {
    let a = answer(read).await?;
    if a.code == want {
        Ok(())
    } else {
        Err(SendError::Refused {
            command: command.to_string(),
            code: a.code,
            text: a.text,
        })
    }
}

/// One answer, reading every line of a multi-line one (`250-…` then `250 …`).
async fn answer(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> Result<Delivery, SendError> {
    let mut text = Vec::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, read.read_line(&mut line))
            .await
            .map_err(|_| SendError::Timeout(WAIT))??;
        if n == 0 {
            return Err(SendError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the receiver closed the connection",
            )));
        }
        let line = line.trim_end();
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| SendError::Protocol(line.chars().take(100).collect()))?;
        text.push(line.get(4..).unwrap_or("").to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(Delivery {
                code,
                text: text.join("\n"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stuffed;

    #[test]
    fn lines_are_stuffed_and_ended() {
        assert_eq!(stuffed(b"a\n.b\nc"), b"a\r\n..b\r\nc\r\n.\r\n");
        assert_eq!(stuffed(b"a\r\n.\r\n"), b"a\r\n..\r\n.\r\n");
    }
}
