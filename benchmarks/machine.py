"""What the benchmarks record about the machine they ran on (their JSON's ``machine``/``meta``)."""
from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded: absolute times mean little at a high load."""
    return [round(x, 2) for x in os.getloadavg()]


def machine(start_load: list[float]) -> dict:
    """The ``machine`` entry of a benchmark's JSON: CPU, core count, Python, load before and after."""
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg_start": start_load, "loadavg_end": loadavg()}
