"""Run etcd's own load generator, `benchmark` (etcd's tools/benchmark), and turn its text report
into the report dict `tally bench --json` prints (throughput, latency_ms, errors, ...), so that
bench/compare can put both load generators' numbers in the same tables.

`benchmark` prints, after its progress bar:

    Summary:
      Total:        0.284035843 secs.
      Slowest:      0.027965013 secs.
      Fastest:      0.000346726 secs.
      Average:      0.00094202601 secs.
      Stddev:       0.00183270754 secs.
      Requests/sec: 1056.2047269506054

    Response time histogram:
      0.000346726 [1]       |
      ...

    Latency distribution:
      10% in 0.00042326 secs.
      ...
      99% in 0.007632711 secs.
      99.9% in 0.0123 secs.

    Error distribution:
      [3]   rpc error: code = Unavailable desc = ...

(with --precise, which `run` passes, the numbers have full precision instead of 4 decimals). A
percentile it could not place (99.9% with fewer than 1000 requests) is left out, and so is the
whole Summary when no request succeeded. Requests/sec is successes over Total, and Total runs
from when the clients were created (they dial lazily, so connection set-up is inside it; `tally
bench` starts its clock once every connection is up). Its percentile p is the sorted latency at
index ceil(p/100 * n), one sample above HdrHistogram's value_at_quantile.
"""

import os
import re
import subprocess

_SECS = r"([-+0-9.eE]+) secs\."
_SUMMARY = {
    "total": re.compile(r"^\s*Total:\s+" + _SECS, re.M),
    "slowest": re.compile(r"^\s*Slowest:\s+" + _SECS, re.M),
    "fastest": re.compile(r"^\s*Fastest:\s+" + _SECS, re.M),
    "average": re.compile(r"^\s*Average:\s+" + _SECS, re.M),
    "stddev": re.compile(r"^\s*Stddev:\s+" + _SECS, re.M),
}
_RPS = re.compile(r"^\s*Requests/sec:\s+([-+0-9.eE]+|NaN|\+Inf)\s*$", re.M)
_PERCENTILE = re.compile(r"^\s*([0-9.]+)% in " + _SECS, re.M)
_HIST_ROW = re.compile(r"^\s*[-+0-9.eE]+ \[(\d+)\]\s*\|", re.M)
_ERROR_ROW = re.compile(r"^\s*\[(\d+)\]\s+(.*)$", re.M)
_GRPC_CODE = re.compile(r"code = (\w+)")


def parse(text):
    """The report dict of one `benchmark` run's stdout. Latencies in milliseconds, None where
    `benchmark` printed none."""

    def section(name):
        m = re.search(r"^" + name + r":\s*$", text, re.M)
        if not m:
            return ""
        rest = text[m.end():]
        end = re.search(r"^\S.*:\s*$", rest, re.M)  # the next section's heading
        return rest[: end.start()] if end else rest

    summary = section("Summary")
    secs = {}
    for key, rx in _SUMMARY.items():
        m = rx.search(summary)
        secs[key] = float(m.group(1)) if m else None
    m = _RPS.search(summary)
    rps = float(m.group(1)) if m else 0.0

    successes = sum(int(n) for n in _HIST_ROW.findall(section("Response time histogram")))
    pct = {float(p): float(s) * 1000.0 for p, s in _PERCENTILE.findall(section("Latency distribution"))}

    error_codes = {}
    for n, msg in _ERROR_ROW.findall(section("Error distribution")):
        code = _GRPC_CODE.search(msg)
        key = code.group(1) if code else msg.strip()
        error_codes[key] = error_codes.get(key, 0) + int(n)
    if not summary and not error_codes:
        lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
        raise ValueError("no Summary and no Error distribution in benchmark's output, which ends:\n"
                         + "\n".join(lines[-10:]))

    def ms(v):
        return None if v is None else v * 1000.0

    total = secs["total"]
    return {
        "workload": None,
        "params": {},
        "successes": successes,
        "errors": sum(error_codes.values()),
        "error_codes": error_codes,
        "elapsed_s": total,
        "throughput": rps if successes else 0.0,
        "latency_ms": {
            "min": ms(secs["fastest"]),
            "mean": ms(secs["average"]),
            "stddev": ms(secs["stddev"]),
            "p50": pct.get(50.0),
            "p90": pct.get(90.0),
            "p99": pct.get(99.0),
            "p999": pct.get(99.9),
            "max": ms(secs["slowest"]),
        },
        "ops": {},
    }


def run(benchmark, endpoints, args, total, timeout=900):
    """Runs `benchmark --endpoints=... --precise ARGS --total=TOTAL` and returns its report dict
    (the command line in "params"). `benchmark` has no per-request timeout, so a run that takes
    longer than `timeout` seconds is killed and raises."""
    cmd = [benchmark, f"--endpoints={','.join(endpoints)}", "--precise", *args, f"--total={total}"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{' '.join(cmd)}: no answer after {timeout} s") from e
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-2000:]}")
    try:
        rep = parse(r.stdout)
    except ValueError as e:
        raise RuntimeError(f"{' '.join(cmd)}: {e}\nstderr: {r.stderr.strip()[-2000:]}") from e
    rep["workload"] = next((a for a in args if not a.startswith("-")), None)
    rep["params"] = {"command": cmd, "total": total}
    return rep


def version(benchmark):
    """The etcd module version `scripts/etcd-ref` built `benchmark` from (its go.mod, next to the
    bin directory), or None."""
    gomod = os.path.join(os.path.dirname(os.path.dirname(benchmark)), "benchmark", "go.mod")
    try:
        with open(gomod) as f:
            m = re.search(r"^\s*go\.etcd\.io/etcd/v3 v(\S+)", f.read(), re.M)
    except OSError:
        return None
    return m.group(1) if m else None
