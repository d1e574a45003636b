"""The STARTTLS line protocol of twistor's starttls examples, on real Twisted's startTLS.

    twisted_starttls.py server CERT_PEM KEY_PEM   prints the port, serves until killed
    twisted_starttls.py client PORT CA_PEM TEXT...  exits 0 if every TEXT was answered
                                                      over TLS

Server: greets `220 ready`; `STARTTLS` answers `220 go ahead` then startTLS; other lines
get `250 LINE (tls)` / `250 LINE (clear)`; `QUIT` gets `221 bye` and closes. The client
sends `before tls`, `STARTTLS`, then (after startTLS) each TEXT and `QUIT`, printing every
line it receives. As the twistor examples do, lines buffered after the switch are cleared
(`clearLineBuffer`) and handed to TLS, never taken as commands."""
import sys

from twisted.internet import protocol, reactor, ssl
from twisted.internet.interfaces import ISSLTransport
from twisted.protocols.basic import LineReceiver


def tls_active(transport):
    return ISSLTransport.providedBy(transport)


class Server(LineReceiver):
    def connectionMade(self):
        self.sendLine(b"220 ready")

    def lineReceived(self, line):
        tls = tls_active(self.transport)
        if line == b"STARTTLS" and not tls:
            self.sendLine(b"220 go ahead")
            pending = self.clearLineBuffer()
            self.transport.startTLS(self.factory.options)
            if pending:
                # Bytes after the command are TLS: give them to the TLS layer.
                self.transport.protocol.dataReceived(pending)
        elif line == b"QUIT":
            self.sendLine(b"221 bye")
            self.transport.loseConnection()
        else:
            self.sendLine(b"250 " + line + (b" (tls)" if tls else b" (clear)"))


class Client(LineReceiver):
    stage = "greeting"
    answered = 0

    def lineReceived(self, line):
        print(line.decode(), flush=True)
        if self.stage == "greeting":
            self.sendLine(b"before tls")
            self.stage = "clear"
        elif self.stage == "clear":
            self.sendLine(b"STARTTLS")
            self.stage = "asked"
        elif self.stage == "asked":
            self.clearLineBuffer()
            self.transport.startTLS(self.factory.options)
            for t in self.factory.texts:
                self.sendLine(t.encode())
            self.sendLine(b"QUIT")
            self.stage = "tls"
        else:
            if line.endswith(b"(tls)"):
                self.answered += 1
            if line.startswith(b"221"):
                self.factory.ok = self.answered == len(self.factory.texts)

    def connectionLost(self, reason):
        if not self.factory.ok:
            print("lost:", reason.value, flush=True)
        reactor.stop()


if sys.argv[1] == "server":
    with open(sys.argv[2]) as c, open(sys.argv[3]) as k:
        cert = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
    f = protocol.ServerFactory.forProtocol(Server)
    f.options = cert.options()
    port = reactor.listenTCP(0, f, interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()
else:
    with open(sys.argv[3]) as c:
        ca = ssl.Certificate.loadPEM(c.read())
    f = protocol.ClientFactory.forProtocol(Client)
    f.options = ssl.optionsForClientTLS("localhost", trustRoot=ca)
    f.texts = sys.argv[4:]
    f.ok = False
    reactor.connectTCP("127.0.0.1", int(sys.argv[2]), f)
    reactor.callLater(15, reactor.stop)
    reactor.run()
    sys.exit(0 if f.ok else 1)
