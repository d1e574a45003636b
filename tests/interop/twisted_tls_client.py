"""A Twisted TLS client (optionsForClientTLS: hostname verification against a CA file):
connects to 127.0.0.1:PORT, sends TEXT, prints what comes back once all of it did, closes.
Exit 0 if the echo matched; on a TLS failure prints the reason and exits 1.

Usage: twisted_tls_client.py PORT CA_PEM HOSTNAME TEXT"""
import sys

from twisted.internet import protocol, reactor, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS

port, ca_path, hostname, text = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
want = text.encode()
result = {"code": 1}


class Echo(protocol.Protocol):
    got = b""

    def connectionMade(self):
        self.transport.write(want)

    def dataReceived(self, data):
        self.got += data
        if len(self.got) >= len(want):
            print(self.got.decode(), flush=True)
            result["code"] = 0 if self.got == want else 1
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if result["code"]:
            print("lost:", reason.value, flush=True)
        reactor.stop()


with open(ca_path) as f:
    ca = ssl.Certificate.loadPEM(f.read())
options = ssl.optionsForClientTLS(hostname, trustRoot=ca)
endpoint = wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", port))
d = endpoint.connect(protocol.Factory.forProtocol(Echo))


def failed(f):
    print("connect failed:", f.value, flush=True)
    reactor.stop()


d.addErrback(failed)
reactor.callLater(15, reactor.stop)
reactor.run()
sys.exit(result["code"])
