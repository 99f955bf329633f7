"""The fuzz suite's counts, printed in every run's terminal summary (with or without -s)."""

from __future__ import annotations

from collections import Counter

STATS: dict[str, dict] = {}


def record(suite: str, *, cases: int, accepted: int, refused: Counter, seconds: float, slowest: float,
           peak_rss_mb: float, **extra) -> None:
    STATS[suite] = {"cases": cases, "accepted": accepted, "refused": refused, "seconds": seconds,
                    "slowest": slowest, "peak_rss_mb": peak_rss_mb, **extra}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not STATS:
        return
    tr = terminalreporter
    tr.section("fuzz")
    total = sum(s["cases"] for s in STATS.values())
    for name, s in STATS.items():
        top = ", ".join(f"{k} {v}" for k, v in s["refused"].most_common(6))
        more = "".join(f", {k} {v}" for k, v in s.items() if k not in ("cases", "accepted", "refused", "seconds",
                                                                        "slowest", "peak_rss_mb"))
        tr.write_line(f"{name}: {s['cases']} cases, {s['accepted']} accepted, {sum(s['refused'].values())} refused "
                      f"in {s['seconds']:.1f} s (slowest case {s['slowest'] * 1000:.0f} ms, peak RSS "
                      f"{s['peak_rss_mb']:.0f} MB{more}); top codes: {top}")
    tr.write_line(f"fuzz total: {total} cases")
