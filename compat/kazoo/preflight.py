#!/usr/bin/env python3
"""Check that the servers kazoo's harness starts answer a client at all.

Runs with the same environment as the suite, so it starts the servers exactly
as the tests do (through the java shim for arbor), connects a KazooClient,
writes and reads one node, and stops them. Exit 0 on success, 1 otherwise,
printing the servers' logs. The runner skips the suite when this fails:
against a server that never answers, every test would spend ~75 s retrying.
"""

import sys

from kazoo.client import KazooClient
from kazoo.testing.harness import get_global_cluster

CONNECT_TIMEOUT_SECONDS = 15


def main():
    cluster = get_global_cluster()
    try:
        cluster.start()
        hosts = ",".join(server.address for server in cluster)
        client = KazooClient(hosts, timeout=10)
        client.start(timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            path = client.create("/kazoo-compat-preflight-", b"ok", sequence=True)
            data, _ = client.get(path)
            assert data == b"ok", data
            client.delete(path)
        finally:
            client.stop()
            client.close()
        print("preflight: %s answered" % hosts)
        return 0
    except Exception as exc:  # any failure means: do not run the suite
        print("preflight: FAILED: %r" % (exc,))
        print("preflight: last server log lines:")
        for line in cluster.get_logs():
            print("  " + line.rstrip("\n"))
        return 1
    finally:
        cluster.terminate()


if __name__ == "__main__":
    sys.exit(main())
