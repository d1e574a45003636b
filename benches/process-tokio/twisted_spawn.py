"""Spawn + wait of /bin/true per second with Twisted's reactor.spawnProcess: the peer figure
of the process bench (`cargo run --release` here). Run with a Python that has Twisted:
`python twisted_spawn.py [SECONDS-PER-CASE]`.

Twisted's default spawn is posix_spawnp with three pipes (childFDs 0 "w", 1 "r", 2 "r");
"stdio inherited" maps 0, 1, 2 to the parent's own descriptors.
"""
import resource
import sys
import time

from twisted.internet import defer, protocol, reactor

SECS = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0


class Ended(protocol.ProcessProtocol):
    def __init__(self, d):
        self.d = d

    def processEnded(self, reason):
        self.d.callback(None)


def batch(k, pipes):
    ds = []
    for _ in range(k):
        d = defer.Deferred()
        fds = None if pipes else {0: 0, 1: 1, 2: 2}
        reactor.spawnProcess(Ended(d), "/bin/true", ["true"], env=None, childFDs=fds)
        ds.append(d)
    return defer.gatherResults(ds)


def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


@defer.inlineCallbacks
def main():
    for k in (1, 32):
        for pipes in (False, True):
            yield batch(k, pipes)
            start = time.monotonic()
            c0, k0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
            n = 0
            while time.monotonic() - start < SECS:
                yield batch(k, pipes)
                n += k
            el = time.monotonic() - start
            parent = (cpu(resource.RUSAGE_SELF) - c0) / n * 1e6
            child = (cpu(resource.RUSAGE_CHILDREN) - k0) / n * 1e6
            what = "%d at a time, %s" % (k, "3 pipes" if pipes else "stdio inherited")
            print("%-54s %7.0f /s   parent CPU %6.1f us/child   child CPU %6.1f us"
                  % ("Twisted spawnProcess (%s)" % what, n / el, parent, child))
    reactor.stop()


reactor.callWhenRunning(main)
reactor.run()
