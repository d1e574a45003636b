"""The paper's ReverseLineProtocol on real Twisted over TLS (listenSSL with the certificate
and key given): prints the port, then serves until killed.

Usage: twisted_tls_server.py CERT_PEM KEY_PEM"""
import sys

from twisted.internet import protocol, reactor, ssl
from twisted.protocols.basic import LineReceiver


class ReverseLineProtocol(LineReceiver):
    def lineReceived(self, line):
        self.sendLine(line[::-1])


with open(sys.argv[1]) as c, open(sys.argv[2]) as k:
    cert = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
factory = protocol.ServerFactory.forProtocol(ReverseLineProtocol)
port = reactor.listenSSL(0, factory, cert.options(), interface="127.0.0.1")
print(port.getHost().port, flush=True)
reactor.run()
