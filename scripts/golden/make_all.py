"""Regenerates every golden fixture: runs each scripts/golden/*.py (except make_all.py and the
_-prefixed helper modules) in its own process, in name order.

    /usr/bin/python3 scripts/golden/make_all.py            # all scripts (npm run golden)
    /usr/bin/python3 scripts/golden/make_all.py dense losses  # only these (names without .py)
    /usr/bin/python3 scripts/golden/make_all.py --list     # show what would run

Needs a Python that can import torch (Debian's: /usr/bin/python3). Exits non-zero if any script fails.
"""
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "test", "fixtures")


def scripts():
    names = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name != "make_all" and not name.startswith("_"):
            names.append(name)
    return names


def main(argv):
    available = scripts()
    if "--list" in argv:
        print("\n".join(available))
        return 0
    wanted = [a[:-3] if a.endswith(".py") else a for a in argv]
    unknown = [w for w in wanted if w not in available]
    if unknown:
        print(f"unknown script(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    try:
        import torch  # noqa: F401  (only to fail early with a clear message)
    except ImportError:
        print(f"{sys.executable} cannot import torch; run this with /usr/bin/python3 (Debian's PyTorch)", file=sys.stderr)
        return 2

    failed = []
    for name in wanted or available:
        print(f"== {name}.py", flush=True)
        t0 = time.time()
        rc = subprocess.call([sys.executable, os.path.join(HERE, name + ".py")], cwd=ROOT)
        print(f"== {name}.py: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.time() - t0:.1f}s", flush=True)
        if rc != 0:
            failed.append(name)

    print("\nfixtures in test/fixtures:")
    total = 0
    for dirpath, _, files in sorted(os.walk(FIXTURES)):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            size = os.path.getsize(p)
            total += size
            print(f"  {os.path.relpath(p, FIXTURES):40s} {size:9d} bytes")
    print(f"  {'total':40s} {total:9d} bytes")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
