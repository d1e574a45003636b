"""The paper's ReverseLineProtocol on real Twisted: prints the port, then serves until killed."""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class ReverseLineProtocol(LineReceiver):
    def lineReceived(self, line):
        self.sendLine(line[::-1])


class ReverseLineFactory(protocol.ServerFactory):
    protocol = ReverseLineProtocol


port = reactor.listenTCP(0, ReverseLineFactory(), interface="127.0.0.1")
print(port.getHost().port, flush=True)
reactor.run()
