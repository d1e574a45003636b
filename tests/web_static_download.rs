//! A large static file downloaded over real TCP through `File` in a `Site`: the bytes arrive
//! whole (equal checksum) and the server's memory stays bounded, because the body goes out
//! with `sendfile(2)` instead of through user-space buffers. 64 MiB in every run; 1 GiB in
//! the ignored test, which `.ci/run` runs on its own (a few seconds of disk writing and
//! checksumming in a debug build).

#[path = "util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use twistor::prelude::*;
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};
use twistor::web::resource::{Resource, Tree};
use twistor::web::site::AccessLog;
use twistor::web::static_files::file::File;
use twistor::web::static_files::response::StaticFiles;
use twistor::web::{HttpLimits, Site};

/// A checksum cheap enough for a debug build: 64-bit words summed with their index mixed in
/// (catches lost, repeated and reordered words).
fn checksum(state: &mut (u64, u64), data: &[u8]) {
    for w in data.chunks_exact(8) {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        state.0 = state
            .0
            .wrapping_add(v ^ state.1.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        state.1 += 1;
    }
}

/// Writes a file of `len` bytes (a multiple of 8) of non-repeating words; returns its checksum.
fn make_file(path: &PathBuf, len: u64) -> (u64, u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = (0, 0);
    let mut block = vec![0u8; 1 << 20];
    let mut word = 0x0123_4567_89ab_cdefu64;
    for _ in 0..len / block.len() as u64 {
        for w in block.chunks_exact_mut(8) {
            word = word.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            w.copy_from_slice(&word.to_le_bytes());
        }
        checksum(&mut state, &block);
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
    state
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn download(len: u64, secs: u64) {
    util::bounded(secs, move || {
        let dir =
            std::env::temp_dir().join(format!("twistor-download-{len}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.bin");
        let expect = make_file(&path, len);
        let (tx, rx) = std::sync::mpsc::channel();
        let root = dir.clone();
        let server = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let tree = Rc::new(Tree::new());
            tree.put_child(b"static", Rc::new(File::new(StaticFiles::new(&root))));
            let site = Site::with_options(
                tree,
                Rc::new(reactor.clone()),
                HttpLimits::default(),
                AccessLog::Off,
            );
            let port = listen_tcp_with(&reactor, 0, Rc::new(site), ListenOptions::on("127.0.0.1"))
                .unwrap();
            tx.send((port.port(), reactor.thread_handle())).unwrap();
            reactor.run_without_signal_handlers().unwrap();
        });
        let (port, handle) = rx.recv().unwrap();
        let rss_before = rss_kib();
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut r = BufReader::with_capacity(1 << 20, c);
        let mut length = None;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                length = v.trim().parse::<u64>().ok();
            }
        }
        assert_eq!(length, Some(len));
        let mut got = (0, 0);
        let mut left = len;
        let mut buf = vec![0u8; 1 << 20];
        let mut peak = rss_before;
        while left > 0 {
            let want = buf.len().min(left as usize);
            r.read_exact(&mut buf[..want]).unwrap();
            checksum(&mut got, &buf[..want]);
            left -= want as u64;
            if left.is_multiple_of(64 << 20) {
                peak = peak.max(rss_kib());
            }
        }
        handle.stop();
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got, expect, "the body differs from the file");
        // Client and server share this process: the client's buffers are fixed, so growth
        // is the server's. sendfile keeps the file out of user space entirely.
        let grew = peak.saturating_sub(rss_before);
        println!("downloaded {len} bytes; RSS grew by {grew} KiB (from {rss_before} KiB)");
        assert!(grew < 32 * 1024, "RSS grew by {grew} KiB");
    });
}

#[test]
fn a_64_mib_file_downloads_whole_with_bounded_memory() {
    download(64 << 20, 60);
}

#[test]
#[ignore = "1 GiB: run on its own by .ci/run (cargo test --test web_static_download -- --ignored)"]
fn a_1_gib_file_downloads_whole_with_bounded_memory() {
    download(1 << 30, 300);
}
