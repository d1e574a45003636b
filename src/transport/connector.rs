//! Connectors (Twisted's `IConnector`): one connection attempt at a time and its result, the
//! same interface for every stream transport, so [`ClientFactory`](crate::protocol::ClientFactory)
//! and `ReconnectingClientFactory` work with any of them.

use std::fmt;

use super::Address;
use crate::error::NotConnectingError;

/// The state of a connector (Twisted's `connector.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectorState {
    /// Not connecting nor connected.
    Disconnected,
    /// Resolving or connecting.
    Connecting,
    /// Connected.
    Connected,
}

/// A connection attempt and its result (Twisted's `IConnector`). Object-safe: factories get
/// an `&Rc<dyn Connector>` and may keep it to reconnect later.
///
/// ```
/// use std::rc::Rc;
/// use twistor::transport::connector::{Connector, ConnectorState};
/// use twistor::transport::Address;
///
/// // A connector that never connects, as a test double.
/// struct Never;
/// impl Connector for Never {
///     fn connect(&self) {}
///     fn stop_connecting(&self) -> Result<(), twistor::error::NotConnectingError> {
///         Err(twistor::error::NotConnectingError)
///     }
///     fn disconnect(&self) {}
///     fn get_destination(&self) -> Address { Address::Memory("nowhere".into()) }
///     fn state(&self) -> ConnectorState { ConnectorState::Disconnected }
/// }
/// let c: Rc<dyn Connector> = Rc::new(Never);
/// assert_eq!(c.state(), ConnectorState::Disconnected);
/// ```
#[doc(alias = "IConnector")]
pub trait Connector {
    /// Starts a new attempt (again, after a failure or a lost connection). Ignored unless
    /// disconnected.
    fn connect(&self);
    /// Stops the attempt in progress: `client_connection_failed` gets a
    /// [`UserError`](crate::error::UserError). Errors if not connecting.
    #[doc(alias = "stopConnecting")]
    fn stop_connecting(&self) -> Result<(), NotConnectingError>;
    /// Stops connecting, or closes the connection (`lose_connection`).
    fn disconnect(&self);
    /// Where it connects to (for TCP, the host as given and the port: a name is kept
    /// unresolved, as [`Address::Name`]).
    #[doc(alias = "getDestination")]
    fn get_destination(&self) -> Address;
    /// The current state.
    fn state(&self) -> ConnectorState;
}

impl fmt::Debug for dyn Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Connector {} {:?}>",
            self.get_destination(),
            self.state()
        )
    }
}
