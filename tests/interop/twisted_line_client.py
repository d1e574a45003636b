"""A Twisted LineReceiver client: sends each argument after PORT (or after `--unix PATH`) as a
line to 127.0.0.1:PORT (or to the UNIX socket PATH), prints each reply line, exits 0 once every
reply arrived (1 on failure, 2 on a 10 s timeout)."""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver

args = sys.argv[1:]
unix = args[0] == "--unix"
if unix:
    args = args[1:]
lines = [a.encode() for a in args[1:]]
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


if unix:
    reactor.connectUNIX(args[0], Factory())
else:
    reactor.connectTCP("127.0.0.1", int(args[0]), Factory())
reactor.callLater(10, timeout)
reactor.run()
sys.exit(result["code"])
