"""The UDP howto's echo server on real Twisted, on 127.0.0.1: prints its port, then sends
every datagram back to its sender until killed."""
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol


class Echo(DatagramProtocol):
    def datagramReceived(self, data, addr):
        self.transport.write(data, addr)


# Any datagram IPv4 can carry comes back whole, not cut at the 8192-byte default.
port = reactor.listenUDP(0, Echo(), interface="127.0.0.1", maxPacketSize=65536)
print(port.getHost().port, flush=True)
reactor.run()
