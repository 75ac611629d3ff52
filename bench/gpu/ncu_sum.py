"""Sum an `ncu --metrics gpu__time_duration.sum --csv` log per kernel name:
launches, total and mean microseconds (for bench/gpu/quick_ab.sh)."""
import csv
import sys
from collections import defaultdict

tot, cnt = defaultdict(float), defaultdict(int)
with open(sys.argv[1]) as f:
    rows = [l for l in f if l.startswith('"')]
for r in csv.DictReader(rows):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = r["Kernel Name"].split("(")[0][:60]
    v = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "ns")
    tot[name] += v / 1000.0 if unit in ("ns", "nsecond") else v / 1e-3 if unit in ("ms", "msecond") else v
    cnt[name] += 1
for k in sorted(tot, key=tot.get, reverse=True):
    print(f"{k:60s} n={cnt[k]:4d} total={tot[k]:9.1f} us mean={tot[k] / cnt[k]:7.2f} us")
