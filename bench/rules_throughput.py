"""Rule engine throughput on one core: schema check + rules + decision per application.

Run: .venv/bin/python -m bench.rules_throughput [N]
Target: at least 50,000 applications per second. Prints the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time

from loanstack.functions import fresh as load_function

loans = load_function("loan_validation")


def applications(n: int) -> list[dict[str, object]]:
    rng = random.Random(42)
    kinds = ["personal", "auto", "mortgage", "business"]
    apps = []
    for i in range(n):
        kind = kinds[i % 4]
        amount = rng.uniform(1000, 400000)
        apps.append({
            "loanId": f"L-{i}", "applicantId": f"A-{i}", "loanType": kind, "loanAmount": amount,
            "termMonths": rng.choice([12, 24, 36, 60, 120, 360]), "annualInterestRate": rng.uniform(0, 15),
            "creditScore": rng.randint(300, 850), "annualIncome": rng.uniform(20000, 400000),
            "monthlyDebtPayments": rng.uniform(0, 5000), "collateralValue": amount * rng.uniform(0.8, 2.0),
        })  # fmt: skip
    return apps


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    apps = applications(n)
    limits = loans.thresholds()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for app in apps:
            loans.evaluate(app, limits)
        best = min(best, time.perf_counter() - start)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{n} applications in {best:.3f} s (best of 3, one core): {n / best:,.0f} applications/s")
    print(
        f"target 50,000/s: {'met' if n / best >= 50_000 else 'NOT met'} ({n / best / 50_000:.2f}x)"
    )


if __name__ == "__main__":
    main()
