"""The SimPy model a user would write instead of routesim, for benches/peers.sh.

A 2-deployment fallback chain behind RPM and ITPM token buckets (continuous refill, capacity
= limit x burst, starting full, all-or-nothing admission), as in benches/peers/fallback.toml:
a request tries the primary; a 429 answers after 150.5 ms and the request tries the
secondary; a second 429 ends it. An admitted attempt streams for ttft + output / speed.

Bucket arithmetic is exact (integers in units of 1/60,000,000 token per microsecond, as
routesim's limiter), so the 429 counts can be compared for equality.

Usage: python simpy_fallback.py TRACE.csv  ->  prints one JSON line of counts and timing.
"""

import csv
import json
import sys
import time

import simpy

MICROS_PER_MIN = 60_000_000


class Bucket:
    def __init__(self, limit_per_min, burst_us):
        self.limit = limit_per_min
        self.capacity = limit_per_min * burst_us
        self.level = self.capacity
        self.updated = 0

    def level_at(self, now_us):
        return min(self.capacity, self.level + self.limit * max(0, now_us - self.updated))

    def advance(self, now_us):
        self.level = self.level_at(now_us)
        self.updated = max(self.updated, now_us)


class Deployment:
    def __init__(self, env, rpm, itpm, burst_s, ttft_ms, tokens_per_s):
        self.env = env
        self.rpm = Bucket(rpm, burst_s * 1_000_000)
        self.itpm = Bucket(itpm, burst_s * 1_000_000)
        self.ttft_us = ttft_ms * 1000
        self.tokens_per_s = tokens_per_s
        self.attempts = 0
        self.rate_limited = 0
        self.served = 0

    def try_admit(self, input_tokens):
        now = int(round(self.env.now))
        self.attempts += 1
        if self.rpm.level_at(now) >= MICROS_PER_MIN and self.itpm.level_at(now) >= input_tokens * MICROS_PER_MIN:
            for bucket, cost in ((self.rpm, 1), (self.itpm, input_tokens)):
                bucket.advance(now)
                bucket.level -= cost * MICROS_PER_MIN
            return True
        self.rate_limited += 1
        return False


RATE_LIMIT_RESPONSE_US = 150_500


def request(env, chain, input_tokens, output_tokens, outcome):
    for deployment in chain:
        if deployment.try_admit(input_tokens):
            yield env.timeout(deployment.ttft_us + output_tokens / deployment.tokens_per_s * 1e6)
            deployment.served += 1
            outcome["ok"] += 1
            return
        yield env.timeout(RATE_LIMIT_RESPONSE_US)
    outcome["rate_limited"] += 1


def arrivals(env, rows, chain, outcome):
    for arrival_us, input_tokens, output_tokens in rows:
        if arrival_us > env.now:
            yield env.timeout(arrival_us - env.now)
        env.process(request(env, chain, input_tokens, output_tokens, outcome))


def main():
    path = sys.argv[1]
    started = time.process_time()
    with open(path, newline="") as f:
        rows = [
            (int(round(float(r["arrival_ms"]) * 1000)), int(r["input_tokens"]), int(r["output_tokens"]))
            for r in csv.DictReader(f)
        ]
    env = simpy.Environment()
    primary = Deployment(env, 6000, 2_000_000, 10, 800, 50)
    secondary = Deployment(env, 3000, 1_000_000, 10, 900, 40)
    outcome = {"ok": 0, "rate_limited": 0}
    env.process(arrivals(env, rows, [primary, secondary], outcome))
    env.run()
    cpu_s = time.process_time() - started
    print(json.dumps({
        "requests": len(rows),
        "ok": outcome["ok"],
        "rate_limited": outcome["rate_limited"],
        "attempts": primary.attempts + secondary.attempts,
        "attempt_429s": primary.rate_limited + secondary.rate_limited,
        "primary_429s": primary.rate_limited,
        "secondary_429s": secondary.rate_limited,
        "cpu_s": round(cpu_s, 3),
    }))


if __name__ == "__main__":
    main()
