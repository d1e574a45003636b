"""A Twisted DatagramProtocol client: sends datagrams of varied sizes (an empty one, a few
bytes, around the Ethernet MTU, 8 KiB, up to --max BYTES) one at a time to 127.0.0.1:PORT and
checks that each comes back unchanged, from that address. Prints one line per datagram and a
summary; exits 0 if every one was echoed, 1 if a reply differed, 2 on a 10 s timeout."""
import sys

from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol

port = int(sys.argv[1])
largest = int(sys.argv[3]) if sys.argv[2:3] == ["--max"] else 8192
sizes = [s for s in [0, 1, 5, 100, 1400, 1472, 1473, 4096, 8192, largest] if s <= largest]
# Each datagram is distinct so a stale reply cannot pass for the current one.
datagrams = [bytes((i * 7 + n) % 256 for i in range(n)) for n in sizes]
result = {"code": 1, "echoed": 0}


class Client(DatagramProtocol):
    def startProtocol(self):
        self.next = 0
        self.send()

    def send(self):
        self.transport.write(datagrams[self.next], ("127.0.0.1", port))

    def datagramReceived(self, data, addr):
        want = datagrams[self.next]
        if addr != ("127.0.0.1", port) or data != want:
            print(
                "datagram %d: sent %d bytes, got %d from %r" % (self.next, len(want), len(data), addr),
                flush=True,
            )
            reactor.stop()
            return
        print("echoed %d bytes" % len(data), flush=True)
        result["echoed"] += 1
        self.next += 1
        if self.next == len(datagrams):
            result["code"] = 0
            reactor.stop()
        else:
            self.send()


def timeout():
    result["code"] = 2
    reactor.stop()


reactor.listenUDP(0, Client(), interface="127.0.0.1", maxPacketSize=65536)
reactor.callLater(10, timeout)
reactor.run()
print("%d of %d datagrams echoed" % (result["echoed"], len(datagrams)), flush=True)
sys.exit(result["code"])
