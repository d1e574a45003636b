"""A Twisted LineReceiver client over a UNIX socket: sends each argument after PATH as a line
to the socket PATH, prints each reply line, exits 0 once every reply arrived (1 on failure,
2 on a 10 s timeout)."""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver

path = sys.argv[1]
lines = [a.encode() for a in sys.argv[2:]]
result = {"code": 1}


class Client(LineReceiver):
    def connectionMade(self):
        self.got = []
        for line in lines:
            self.sendLine(line)

    def lineReceived(self, line):
        print(line.decode(), flush=True)
        self.got.append(line)
        if len(self.got) == len(lines):
            result["code"] = 0
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if reactor.running:
            reactor.stop()


class Factory(protocol.ClientFactory):
    protocol = Client

    def clientConnectionFailed(self, connector, reason):
        print("connection failed:", reason.getErrorMessage(), file=sys.stderr)
        reactor.stop()


def timeout():
    result["code"] = 2
    reactor.stop()


reactor.connectUNIX(path, Factory())
reactor.callLater(10, timeout)
reactor.run()
sys.exit(result["code"])
