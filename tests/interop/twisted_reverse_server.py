"""The paper's ReverseLineProtocol on real Twisted: prints the port (or, with `--unix PATH`,
the path once listening on that UNIX socket), then serves until killed."""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class ReverseLineProtocol(LineReceiver):
    def lineReceived(self, line):
        self.sendLine(line[::-1])


class ReverseLineFactory(protocol.ServerFactory):
    protocol = ReverseLineProtocol


if sys.argv[1:2] == ["--unix"]:
    reactor.listenUNIX(sys.argv[2], ReverseLineFactory())
    print(sys.argv[2], flush=True)
else:
    port = reactor.listenTCP(0, ReverseLineFactory(), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
reactor.run()
