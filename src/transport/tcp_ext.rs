//! TCP's own options on a connection (Twisted's `ITCPTransport`): they live on a TCP
//! extension reached through [`Transport::tcp`](super::Transport::tcp), not on the generic
//! transport, so other transports have no methods that can only fail.
//!
//! This module (like `mod.rs`, `connector.rs`, `buffer.rs` and `producer.rs`) uses nothing
//! from `protocol/`: the protocol layer depends on these interfaces, and the implementations
//! (`stream.rs`, `listener.rs`, `factory.rs`, `tcp.rs`) depend on both, so there is no cycle.

use std::io;
use std::rc::Weak;

/// What [`TcpExt`] needs from a connection: its socket, while open.
pub(crate) trait SocketAccess {
    /// Runs `f` on the socket; `NotConnected` once the connection is closed.
    fn with_sock(
        &self,
        f: &mut dyn FnMut(socket2::SockRef<'_>) -> io::Result<()>,
    ) -> io::Result<()>;
}

/// The TCP options of a connection (Twisted's `ITCPTransport`), from
/// [`Transport::tcp`](super::Transport::tcp); `None` there for other transports. On a closed
/// connection every call fails with `NotConnected` instead of touching a stale descriptor.
///
/// ```
/// use twistor::testing::StringTransport;
/// // Not a TCP transport: no TCP options.
/// assert!(StringTransport::new().transport().tcp().is_none());
/// ```
#[derive(Clone)]
pub struct TcpExt {
    conn: Weak<dyn SocketAccess>,
}

impl std::fmt::Debug for TcpExt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<TcpExt>")
    }
}

impl TcpExt {
    pub(crate) fn new(conn: Weak<dyn SocketAccess>) -> TcpExt {
        TcpExt { conn }
    }

    fn with<R: Default>(&self, f: impl Fn(socket2::SockRef<'_>) -> io::Result<R>) -> io::Result<R> {
        let Some(c) = self.conn.upgrade() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection closed",
            ));
        };
        let mut out = R::default();
        c.with_sock(&mut |s| {
            out = f(s)?;
            Ok(())
        })?;
        Ok(out)
    }

    /// Sets `TCP_NODELAY` (Nagle's algorithm off when true).
    #[doc(alias = "setTcpNoDelay")]
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.with(|s| s.set_tcp_nodelay(on))
    }

    /// Whether `TCP_NODELAY` is set.
    #[doc(alias = "getTcpNoDelay")]
    pub fn nodelay(&self) -> io::Result<bool> {
        self.with(|s| s.tcp_nodelay())
    }

    /// Sets `SO_KEEPALIVE`.
    #[doc(alias = "setTcpKeepAlive")]
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        self.with(|s| s.set_keepalive(on))
    }

    /// Whether `SO_KEEPALIVE` is set.
    #[doc(alias = "getTcpKeepAlive")]
    pub fn keepalive(&self) -> io::Result<bool> {
        self.with(|s| s.keepalive())
    }
}
