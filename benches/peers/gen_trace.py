"""Writes the SimPy peer's trace: Poisson arrivals (whole milliseconds, so no arrival ties
with 429 answers at .5 ms), 200-600 input tokens, 50-400 output tokens, seeded.

Usage: python gen_trace.py ROWS RATE_PER_S OUT.csv
"""

import random
import sys

rows, rate, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
rng = random.Random(2026)
t_ms = 0.0
with open(out, "w") as f:
    f.write("id,arrival_ms,class,input_tokens,output_tokens\n")
    for i in range(rows):
        t_ms += rng.expovariate(rate) * 1000.0
        f.write(f"r{i},{int(t_ms)},hard,{rng.randint(200, 600)},{rng.randint(50, 400)}\n")
