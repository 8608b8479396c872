//! masqadm: ipvsadm's command line for masq.
//!
//! A thin client: it sends its argument vector (and, for `-R`, its standard input) to
//! masqd's control socket and prints exactly what comes back, exiting with the same code
//! ipvsadm would. All parsing happens in the daemon, with the one grammar both share.
//!
//! Its own option, `--socket PATH` (or `MASQ_SOCKET`), must come first. `-h` and `-v`
//! are answered here, without masqd (see `local`).
#![deny(unsafe_code)]

mod local;
mod pcapng;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use masq_ctl::request::{
    CaptureLine, FrameChunk, Request, StreamChunk, DEFAULT_SOCKET, MAX_REQUEST_BYTES, SOCKET_ENV,
};
use masq_ctl::Outcome;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    match args.first().map(String::as_str) {
        Some("--socket") if args.len() >= 2 => {
            socket = PathBuf::from(&args[1]);
            args.drain(..2);
        }
        Some(a) if a.starts_with("--socket=") => {
            socket = PathBuf::from(&a["--socket=".len()..]);
            args.remove(0);
        }
        _ => {}
    }
    if let Some(text) = local::answer(&args) {
        print!("{text}");
        let _ = std::io::stdout().flush();
        return ExitCode::SUCCESS;
    }
    // `--capture FILE`: the file is written here, the daemon only streams frames.
    let capture = if args.first().map(String::as_str) == Some("--capture") {
        if args.len() < 2 || args[1].starts_with('-') {
            eprintln!("masqadm: --capture needs a file name: masqadm --capture FILE.pcapng [-t VIP:PORT] [--count N]");
            return ExitCode::from(2);
        }
        let path = PathBuf::from(args.remove(1));
        match std::fs::File::create(&path).and_then(pcapng::PcapngWriter::new) {
            Ok(w) => Some((path, w)),
            Err(e) => {
                eprintln!("masqadm: --capture: cannot write {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    let mut capture = capture;
    match call(&socket, args, &mut capture) {
        Ok(outcome) => {
            if let Some((path, writer)) = capture.take() {
                if let Err(e) = writer.finish() {
                    eprintln!("masqadm: --capture: writing {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
            print!("{}", outcome.stdout);
            eprint!("{}", outcome.stderr);
            let _ = std::io::stdout().flush();
            ExitCode::from(outcome.code.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("masqadm: {e:#}");
            // ipvsadm exits 2 when it cannot reach IPVS at all.
            ExitCode::from(2)
        }
    }
}

type Capture = Option<(PathBuf, pcapng::PcapngWriter<std::fs::File>)>;

fn call(socket: &PathBuf, args: Vec<String>, capture: &mut Capture) -> Result<Outcome> {
    let restore = matches!(args.first().map(String::as_str), Some("-R" | "--restore"));
    let stdin = if restore {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_REQUEST_BYTES as u64)
            .read_to_string(&mut text)
            .context("reading the rules from standard input")?;
        Some(text)
    } else {
        None
    };
    let request = Request {
        program: local::PROGRAM.to_string(),
        args,
        stdin,
    };
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach masqd at {} (is masqd running? --socket PATH or {SOCKET_ENV} choose another socket)",
            socket.display()
        )
    })?;
    serde_json::to_writer(&mut stream, &request).context("sending the request")?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .context("sending the request")?;
    // Streamed output (--trace) comes as lines before the final outcome.
    let mut lines = std::io::BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        let n =
            std::io::BufRead::read_line(&mut lines, &mut line).context("reading masqd's reply")?;
        if n == 0 {
            anyhow::bail!("masqd closed the connection without an answer");
        }
        if let Ok(captured) = serde_json::from_str::<CaptureLine>(&line) {
            if let Some((path, writer)) = capture.as_mut() {
                write_captured(writer, &captured.frame)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            continue;
        }
        if let Ok(chunk) = serde_json::from_str::<StreamChunk>(&line) {
            print!("{}", chunk.out);
            let _ = std::io::stdout().flush();
            continue;
        }
        return serde_json::from_str(&line)
            .context("masqd sent a reply masqadm does not understand");
    }
}

/// Writes one streamed frame to the capture and says so on stdout.
fn write_captured(
    writer: &mut pcapng::PcapngWriter<std::fs::File>,
    frame: &FrameChunk,
) -> Result<()> {
    let bytes = unhex(&frame.hex).context("masqd sent a frame that is not hex")?;
    let (label, side) = match frame.stage {
        1 => ("1 client→VIP", pcapng::VIP_SIDE),
        2 => ("2 director→RS", pcapng::DIP_SIDE),
        3 => ("3 RS→director", pcapng::DIP_SIDE),
        _ => ("4 director→client", pcapng::VIP_SIDE),
    };
    writer.frame(side, frame.epoch_us, &bytes, &format!("stage {label}"))?;
    println!("stage {label:<18} {} bytes", bytes.len());
    Ok(())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
