"""The paper's ReverseLineProtocol on real Twisted over the UNIX socket PATH (listenUNIX):
prints the path once listening, then serves until killed."""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class ReverseLineProtocol(LineReceiver):
    def lineReceived(self, line):
        self.sendLine(line[::-1])


class ReverseLineFactory(protocol.ServerFactory):
    protocol = ReverseLineProtocol


reactor.listenUNIX(sys.argv[1], ReverseLineFactory())
print(sys.argv[1], flush=True)
reactor.run()
