//! Where documents go: the X-Ray daemon's UDP port. Each datagram is the daemon's header line
//! (`{"format": "json", "version": 1}`), a newline, and one segment document. The socket is
//! non-blocking: a datagram the kernel will not take at once is dropped and counted, never
//! waited for, so an absent or slow daemon costs an invocation nothing but the send calls.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The line the daemon reads before each document.
pub const DAEMON_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// The variable Lambda sets when active tracing is on (and leaves unset when it is off).
pub const DAEMON_ADDRESS_VAR: &str = "AWS_XRAY_DAEMON_ADDRESS";

/// Where the layer sends documents, and what became of them. Clones share the socket and the
/// counters, so a test (or the local stack) keeps a clone to read them.
#[derive(Debug, Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    sink: Sink,
    sent: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
enum Sink {
    /// A non-blocking socket, or none when binding one failed (every document is dropped).
    Udp(Option<UdpSocket>),
    /// Kept in memory, in order.
    Memory(std::sync::Mutex<Vec<Vec<u8>>>),
    /// A socket whose buffer is always full: every send would block.
    #[cfg(test)]
    Full,
}

impl Daemon {
    /// The daemon Lambda runs for active tracing, from `AWS_XRAY_DAEMON_ADDRESS`; `None` (tracing
    /// off) when the variable is unset or is not an address.
    pub fn from_env() -> Option<Daemon> {
        Self::from_address(&std::env::var(DAEMON_ADDRESS_VAR).ok()?)
    }

    /// The daemon at `value`: `host:port`, or the two-address form `tcp:host:port udp:host:port`
    /// (the UDP one is used). A host name is resolved once, here.
    pub fn from_address(value: &str) -> Option<Daemon> {
        let value = value.trim();
        let address = if value.contains(char::is_whitespace) || value.starts_with("udp:") {
            value
                .split_whitespace()
                .find_map(|part| part.strip_prefix("udp:"))?
        } else if value.starts_with("tcp:") {
            return None;
        } else {
            value
        };
        let addr = address.to_socket_addrs().ok()?.next()?;
        Some(Daemon::udp(addr))
    }

    /// The daemon listening on `addr`.
    pub fn udp(addr: SocketAddr) -> Daemon {
        let local: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .ok();
        Self::with_sink(addr, Sink::Udp(socket))
    }

    fn with_sink(addr: SocketAddr, sink: Sink) -> Daemon {
        Daemon {
            inner: Arc::new(Inner {
                addr,
                sink,
                sent: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// A daemon that keeps every datagram in memory instead of sending it (for tests: nothing
    /// bounds what it keeps), read with [`Daemon::recorded`].
    pub fn recording() -> Daemon {
        Self::with_sink(
            (std::net::Ipv4Addr::LOCALHOST, 0).into(),
            Sink::Memory(Default::default()),
        )
    }

    /// The datagrams a [`Daemon::recording`] kept; empty for any other.
    pub fn recorded(&self) -> Vec<Vec<u8>> {
        match &self.inner.sink {
            Sink::Memory(kept) => kept.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            _ => Vec::new(),
        }
    }

    /// A daemon whose socket never takes a datagram (its buffer is full).
    #[cfg(test)]
    pub(crate) fn full() -> Daemon {
        Self::with_sink(([127, 0, 0, 1], 2000).into(), Sink::Full)
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Datagrams the kernel took.
    pub fn sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// Documents given up: the socket would have blocked, or the send failed (no route, no
    /// socket).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Sends one datagram (header line and `document`) without waiting.
    pub(crate) fn send(&self, document: &[u8]) {
        let mut datagram = Vec::with_capacity(DAEMON_HEADER.len() + document.len());
        datagram.extend_from_slice(DAEMON_HEADER.as_bytes());
        datagram.extend_from_slice(document);
        let result = match &self.inner.sink {
            Sink::Udp(Some(socket)) => socket.send_to(&datagram, self.inner.addr),
            Sink::Udp(None) => Err(io::ErrorKind::NotConnected.into()),
            Sink::Memory(kept) => {
                let len = datagram.len();
                kept.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(datagram);
                Ok(len)
            }
            #[cfg(test)]
            Sink::Full => Err(io::ErrorKind::WouldBlock.into()),
        };
        let counter = match result {
            Ok(_) => &self.inner.sent,
            Err(_) => &self.inner.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_host_and_port_or_the_udp_half_of_the_two_address_form() {
        let want: SocketAddr = "169.254.79.129:2000".parse().unwrap();
        assert_eq!(
            Daemon::from_address("169.254.79.129:2000").unwrap().addr(),
            want
        );
        assert_eq!(
            Daemon::from_address("tcp:127.0.0.1:2000 udp:169.254.79.129:2000")
                .unwrap()
                .addr(),
            want
        );
        assert_eq!(
            Daemon::from_address("udp:169.254.79.129:2000 tcp:127.0.0.1:2000")
                .unwrap()
                .addr(),
            want
        );
        assert_eq!(
            Daemon::from_address("localhost:2000")
                .unwrap()
                .addr()
                .port(),
            2000
        );
    }

    #[test]
    fn an_address_that_is_not_one_turns_tracing_off() {
        for value in [
            "",
            "2000",
            "tcp:127.0.0.1:2000",
            "nowhere",
            "udp:",
            "1.2.3.4:port",
        ] {
            assert!(Daemon::from_address(value).is_none(), "{value}");
        }
    }

    #[test]
    fn a_full_socket_drops_and_counts_instead_of_waiting() {
        let daemon = Daemon::full();
        for _ in 0..3 {
            daemon.send(b"{}");
        }
        assert_eq!((daemon.sent(), daemon.dropped()), (0, 3));
    }
}
