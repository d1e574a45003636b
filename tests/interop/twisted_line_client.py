"""A Twisted LineReceiver client: sends each argument as a line to 127.0.0.1:PORT, prints each
reply line, exits 0 once every reply arrived (1 on failure, 2 on a 10 s timeout)."""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver

port = int(sys.argv[1])
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


reactor.connectTCP("127.0.0.1", port, Factory())
reactor.callLater(10, timeout)
reactor.run()
sys.exit(result["code"])
