#!/usr/bin/env python3
"""How fast the Python module loads a run's ops.csv, and the memory it takes, as rows (a dict
per operation) and as columns (a list per column), with the time pandas then takes. Needs the
module installed (scripts/test-python.sh makes target/pyvenv) and pandas.

    target/pyvenv/bin/python scripts/bench-python.py [operations]
"""

import gc
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pandas as pd

import reckon

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
folder = Path(tempfile.mkdtemp(prefix="reckon-bench-py-"))
rng = random.Random(0)
with open(folder / "ops.csv", "w") as f:
    f.write("n,client,kind,key,intended,sent,done,ok,error,target\n")
    for i in range(n):
        t = i / 1000
        ok = rng.random() > 0.01
        f.write(f"{i},mc{i % 3 + 1},{'write' if i % 2 else 'read'},{i % 100:03},{t:.6f},"
                f"{t + 0.00002:.9f},{t + 0.04 + rng.random() / 100:.9f},{str(ok).lower()},"
                f"{'' if ok else 'timed out'},http://10.0.1.{i % 3 + 1}:2379\n")
size = (folder / "ops.csv").stat().st_size
print(f"ops.csv: {n} operations, {size / 1e6:.0f} MB")
for columns in (False, True):
    gc.collect()
    t0 = time.perf_counter()
    table = reckon.Run(folder).table("ops", columns=columns)
    t1 = time.perf_counter()
    df = pd.DataFrame(table)
    t2 = time.perf_counter()
    assert len(df) == n
    del table, df
    # Memory, separately: tracemalloc slows every allocation down.
    gc.collect()
    tracemalloc.start()
    table = reckon.Run(folder).table("ops", columns=columns)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del table
    print(f"{'columns' if columns else 'rows':>8}: load {t1 - t0:.2f} s ({n / (t1 - t0) / 1e6:.2f} M ops/s), "
          f"{held / n:.0f} bytes/op in Python objects; then pandas.DataFrame {t2 - t1:.2f} s")
os.remove(folder / "ops.csv")
os.rmdir(folder)
