"""Benchmark: what a bastion costs when connecting, and what sharing it saves.

    .venv/bin/python bench/bench_ssh_jump.py [--repeat 5]

Starts two throwaway test hosts (label ``io.reconciler.testbed=1``, removed at exit):
a bastion with SSH published on 127.0.0.1, and a target whose SSH is reachable only
from the bastion. Measures, in this process, with the real SSH transport:

* direct: log into the bastion and run ``true`` (a fresh connection each time);
* via bastion, cold: a new jump pool, so bastion login + channel + target login;
* via bastion, shared: a second target transport while the first holds the bastion
  connection (only the channel and the target login).

Prints the median and worst of ``--repeat`` runs of each. No targets: figures only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.spec import HostSpec  # noqa: E402
from reconciler.transport.ssh import SSHTransport  # noqa: E402
from testbed.hosts import start_host  # noqa: E402

HIDDEN = "hidden.internal"


def timed(fn: Callable[[], None], repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), max(runs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    target = start_host("bench-hidden", ports=(), publish_ssh=False)
    hosts_line = f"{HIDDEN}:{target.container_ip}"
    bastion = start_host("bench-bastion", ports=(), extra_args=["--add-host", hosts_line])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kh = Path(tmp) / "known_hosts"
            kh.write_text("\n".join([*bastion.host_key_lines, *target.known_hosts_lines(HIDDEN)]) + "\n")
            key = str(bastion.key_path)
            peers = {"bastion": HostSpec(connect=bastion.ssh_url, identity_file=key, known_hosts=str(kh))}

            def behind(name: str, share: bool) -> SSHTransport:
                return SSHTransport(name, f"ssh://root@{HIDDEN}", identity_file=key, known_hosts=str(kh),
                                    via="bastion", peers=peers, share_jumps=share)

            def direct() -> None:
                t = SSHTransport("bastion", bastion.ssh_url, identity_file=key, known_hosts=str(kh))
                t.run(["true"])
                t.close()

            def cold() -> None:
                t = behind("web", share=False)
                t.run(["true"])
                t.close()

            holder = behind("holder", share=True)
            holder.run(["true"])  # holds the shared bastion connection

            def shared() -> None:
                t = behind("web", share=True)
                t.run(["true"])
                t.close()

            for label, fn in (("direct login + `true`", direct), ("via bastion, cold", cold),
                              ("via bastion, shared bastion", shared)):
                median, worst = timed(fn, args.repeat)
                print(f"{label:32s} median {median * 1000:7.1f} ms  worst {worst * 1000:7.1f} ms "
                      f"({args.repeat} runs)")
            holder.close()
    finally:
        target.remove()
        bastion.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
