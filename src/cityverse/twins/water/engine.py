"""The EPANET 2.3 hydraulic engine, kept open between runs.

A thin typed binding over the toolkit library that the EPyT wheel ships (OWA-EPANET 2.3,
with per-project handles and the bulk getters ``EN_getnodevalues``/``EN_getlinkvalues``
that fill a whole results row in one call)::

    engine = Engine.open("net.inp")            # EPANET parses and checks the file
    run = engine.run(duration=86_400, step=300)  # extended period, results as numpy arrays
    engine.set_node(engine.node_index("n1"), NODE.BASEDEMAND, 0.0)  # change in place
    run = engine.solve()                       # one period, same project: no re-parsing
    engine.close()

Units are those of the file; the twin always opens files written in LPS, so values are
SI: metres, metres of head, litres per second, metres per second, kilowatts.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

# EN_NodeProperty, EN_LinkProperty and friends (epanet2_enums.h, 2.3).
ELEVATION, BASEDEMAND, PATTERN, EMITTER = 0, 1, 2, 3
TANKLEVEL, DEMAND, HEAD, PRESSURE = 8, 9, 10, 11
DEMANDDEFICIT, EMITTERFLOW, LEAKAGEFLOW, DEMANDFLOW, FULLDEMAND = 27, 29, 30, 31, 32
DIAMETER, LENGTH, ROUGHNESS, MINORLOSS, INITSTATUS, INITSETTING = 0, 1, 2, 3, 4, 5
FLOW, VELOCITY, HEADLOSS, STATUS, SETTING, ENERGY = 8, 9, 10, 11, 12, 13
LEAK_AREA, LEAK_EXPAN = 26, 27
DURATION, HYDSTEP, PATTERNSTEP, REPORTSTEP, STARTTIME = 0, 1, 3, 5, 10
EMITEXPON, DEMANDMULT, UNBALANCED = 3, 4, 14
NODE_JUNCTION, NODE_RESERVOIR, NODE_TANK = 0, 1, 2
LINK_CVPIPE, LINK_PIPE, LINK_PUMP, LINK_PRV = 0, 1, 2, 3
CONTROL_LOWLEVEL, CONTROL_HILEVEL, CONTROL_TIMER, CONTROL_TIMEOFDAY = 0, 1, 2, 3
DDA, PDA = 0, 1
SET_OPEN, SET_CLOSED = 1e10, -1e10
_NODECOUNT, _LINKCOUNT = 0, 2
_NODE, _LINK = 0, 1
_NOSAVE, _INITFLOW = 0, 10
_LPS = 5

UNCONVERGED_WARNINGS = {1: "system unbalanced"}
"""Warnings that mean the hydraulic equations were not solved at that time step."""


class EngineError(Exception):
    """EPANET refused an input or failed; ``code`` is the engine's error number."""

    def __init__(self, code: int, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.line = line


class NotConverged(Exception):
    """The hydraulics did not converge at ``time`` (seconds); ``element`` is the node
    with the lowest pressure then, where the imbalance shows."""

    def __init__(self, time: int, element: str, reason: str) -> None:
        super().__init__(
            f"the hydraulic solution did not converge at {format_clock(time)} ({reason}); "
            f"lowest pressure at node {element!r}"
        )
        self.time = time
        self.element = element
        self.reason = reason


def format_clock(seconds: int) -> str:
    """Seconds as EPANET's H:MM:SS."""
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@cache
def library_path() -> str:
    """Where the EPyT wheel keeps the EPANET 2.3 shared library."""
    spec = importlib.util.find_spec("epyt")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(0, "the EPANET engine is missing: install the 'epyt' package")
    root = Path(next(iter(spec.submodule_search_locations)))
    names = {"nt": "win/epanet2.dll", "darwin": "mac/libepanet2.dylib"}
    system = "darwin" if os.uname().sysname == "Darwin" else os.name
    return str(root / "libraries" / names.get(system, "glnx/libepanet2.so"))


@cache
def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(library_path())
    lib.EN_runH.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_long)]
    lib.EN_nextH.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_long)]
    lib.EN_getnodevalues.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.EN_getlinkvalues.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.EN_setnodevalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_double]
    lib.EN_setlinkvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_double]
    lib.EN_setoption.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_double]
    lib.EN_settimeparam.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long]
    lib.EN_setbasedemand.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_double]
    lib.EN_setdemandmodel.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_double,
        ctypes.c_double,
        ctypes.c_double,
    ]
    lib.EN_addcontrol.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_double,
        ctypes.c_int,
        ctypes.c_double,
        ctypes.POINTER(ctypes.c_int),
    ]
    for name in (
        "EN_createproject",
        "EN_deleteproject",
    ):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def error_text(code: int) -> str:
    """EPANET's own message for an error or warning code."""
    buf = ctypes.create_string_buffer(256)
    _lib().EN_geterror(code, buf, 255)
    return buf.value.decode(errors="replace").strip()


_REPORT_ERROR = re.compile(r"Error (\d+):\s*(.*)")
_SECTION = re.compile(r"in (\[[A-Z]+\]) section")


def _read_report(report: Path, inp: Path) -> tuple[str, int | None]:
    """The first input error EPANET wrote to a report, with the line of the file it is
    about (EPANET quotes the line; its number is found by looking the line up)."""
    try:
        lines = report.read_text(errors="replace").splitlines()
        source = inp.read_text(errors="replace").splitlines()
    except OSError:
        return "", None
    for i, line in enumerate(lines):
        match = _REPORT_ERROR.search(line)
        if match is None or match.group(1) == "200":
            continue
        text = match.group(0).strip().rstrip(":")
        quoted = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if not quoted or _REPORT_ERROR.search(quoted):
            return text, None
        section = _SECTION.search(line)
        shown = " ".join(quoted.split())
        current = ""
        # A duplicate is reported on its second appearance.
        skip = 1 if "duplicate" in text.lower() else 0
        for number, raw in enumerate(source, start=1):
            stripped = raw.strip()
            if stripped.startswith("["):
                current = stripped.split()[0].upper()
            elif stripped == quoted and (section is None or current == section.group(1)):
                if skip:
                    skip -= 1
                    continue
                return f"{text} at line {number}: {shown}", number
        return f"{text}: {shown}", None
    return "", None


@dataclass(slots=True)
class Results:
    """What one run produced: one row per reported time (seconds from the start)."""

    times: NDArray[np.int64]
    pressure: NDArray[np.float64]
    head: NDArray[np.float64]
    demand: NDArray[np.float64]
    """Total outflow at each node: consumption plus leakage (negative at sources), L/s."""
    consumption: NDArray[np.float64]
    """Consumer demand delivered at each node, L/s."""
    full_demand: NDArray[np.float64]
    """Consumer demand required at each node (what a pressure-dependent run may not meet)."""
    leakage: NDArray[np.float64]
    """Emitter plus pipe leakage flow at each node, L/s."""
    flow: NDArray[np.float64]
    velocity: NDArray[np.float64]
    status: NDArray[np.float64]
    energy: NDArray[np.float64]
    """Power drawn by each link (pumps only), kW."""
    step: int
    warnings: list[str] = field(default_factory=list)


_SERIES = (
    "pressure",
    "head",
    "demand",
    "consumption",
    "full_demand",
    "leakage",
    "flow",
    "velocity",
    "status",
    "energy",
)


class Engine:
    """One open EPANET project: parameters change in place between runs."""

    def __init__(self, handle: ctypes.c_void_p) -> None:
        self._ph = handle
        self._lib = _lib()
        self.node_ids = self._ids(_NODECOUNT, self._lib.EN_getnodeid)
        self.link_ids = self._ids(_LINKCOUNT, self._lib.EN_getlinkid)
        self._node_index = {name: i for i, name in enumerate(self.node_ids)}
        self._link_index = {name: i for i, name in enumerate(self.link_ids)}
        self.node_types = np.array(
            [self._int(self._lib.EN_getnodetype, i + 1) for i in range(len(self.node_ids))]
        )
        self.link_types = np.array(
            [self._int(self._lib.EN_getlinktype, i + 1) for i in range(len(self.link_ids))]
        )
        ends = []
        for i in range(len(self.link_ids)):
            a, b = ctypes.c_int(), ctypes.c_int()
            self._check(
                self._lib.EN_getlinknodes(self._ph, i + 1, ctypes.byref(a), ctypes.byref(b))
            )
            ends.append((a.value - 1, b.value - 1))
        self.link_nodes = np.array(ends, dtype=np.int64).reshape(-1, 2)
        self._hydraulics_open = False

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(cls, inp: str | Path) -> Engine:
        """Open an .inp file; EngineError with EPANET's number, text and line if refused."""
        lib = _lib()
        handle = ctypes.c_void_p()
        lib.EN_createproject(ctypes.byref(handle))
        with tempfile.TemporaryDirectory(prefix="cityverse-epanet-") as tmp:
            report = Path(tmp) / "report.txt"
            code = lib.EN_open(handle, str(inp).encode(), str(report).encode(), b"")
            if code > 100:
                # The report is flushed only when the project is closed.
                lib.EN_close(handle)
                lib.EN_deleteproject(handle)
                detail, line = _read_report(report, Path(inp))
                message = detail or f"Error {code}: {error_text(code)}"
                raise EngineError(code, f"EPANET rejected {Path(inp).name}: {message}", line)
        engine = cls(handle)
        # Status lines would go to a report file nobody reads, at a cost per step.
        lib.EN_setstatusreport(handle, 0)
        return engine

    @classmethod
    def from_text(cls, text: str) -> Engine:
        """Open a network given as .inp text."""
        with tempfile.TemporaryDirectory(prefix="cityverse-epanet-") as tmp:
            path = Path(tmp) / "network.inp"
            path.write_text(text)
            return cls.open(path)

    def close(self) -> None:
        """Release the project."""
        if self._ph:
            if self._hydraulics_open:
                self._lib.EN_closeH(self._ph)
            self._lib.EN_deleteproject(self._ph)
            self._ph = ctypes.c_void_p()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lookups and parameters --------------------------------------------------------

    def node_index(self, name: str) -> int:
        """Zero-based index of a node; KeyError if there is none of that name."""
        return self._node_index[name]

    def link_index(self, name: str) -> int:
        """Zero-based index of a link; KeyError if there is none of that name."""
        return self._link_index[name]

    def node_values(self, prop: int) -> NDArray[np.float64]:
        """One property of every node."""
        out = np.empty(len(self.node_ids))
        self._check(self._lib.EN_getnodevalues(self._ph, prop, out.ctypes.data))
        return out

    def link_values(self, prop: int) -> NDArray[np.float64]:
        """One property of every link."""
        out = np.empty(len(self.link_ids))
        self._check(self._lib.EN_getlinkvalues(self._ph, prop, out.ctypes.data))
        return out

    def set_node(self, index: int, prop: int, value: float) -> None:
        """Set a node property (zero-based index)."""
        self._check(self._lib.EN_setnodevalue(self._ph, index + 1, prop, value))

    def set_link(self, index: int, prop: int, value: float) -> None:
        """Set a link property (zero-based index)."""
        self._check(self._lib.EN_setlinkvalue(self._ph, index + 1, prop, value))

    def demand_count(self, index: int) -> int:
        """How many demand categories a node has."""
        return self._int(self._lib.EN_getnumdemands, index + 1)

    def base_demand(self, index: int, category: int) -> float:
        """Base demand of one category (zero-based) of a node."""
        value = ctypes.c_double()
        self._check(
            self._lib.EN_getbasedemand(self._ph, index + 1, category + 1, ctypes.byref(value))
        )
        return value.value

    def set_base_demand(self, index: int, category: int, value: float) -> None:
        """Set the base demand of one category (zero-based) of a node."""
        self._check(self._lib.EN_setbasedemand(self._ph, index + 1, category + 1, value))

    def time_param(self, param: int) -> int:
        """A time parameter, seconds."""
        value = ctypes.c_long()
        self._check(self._lib.EN_gettimeparam(self._ph, param, ctypes.byref(value)))
        return value.value

    def set_time_param(self, param: int, value: int) -> None:
        """Set a time parameter, seconds."""
        self._check(self._lib.EN_settimeparam(self._ph, param, value))

    def option(self, option: int) -> float:
        """An analysis option."""
        value = ctypes.c_double()
        self._check(self._lib.EN_getoption(self._ph, option, ctypes.byref(value)))
        return value.value

    def set_option(self, option: int, value: float) -> None:
        """Set an analysis option."""
        self._check(self._lib.EN_setoption(self._ph, option, value))

    def demand_model(self) -> tuple[int, float, float, float]:
        """(DDA or PDA, minimum pressure, required pressure, exponent)."""
        kind = ctypes.c_int()
        pmin, preq, pexp = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        self._check(
            self._lib.EN_getdemandmodel(
                self._ph,
                ctypes.byref(kind),
                ctypes.byref(pmin),
                ctypes.byref(preq),
                ctypes.byref(pexp),
            )
        )
        return kind.value, pmin.value, preq.value, pexp.value

    def set_demand_model(self, kind: int, pmin: float, preq: float, pexp: float) -> None:
        """Choose demand-driven (DDA) or pressure-dependent (PDA) analysis."""
        self._check(self._lib.EN_setdemandmodel(self._ph, kind, pmin, preq, pexp))

    def add_control(self, kind: int, link: int, setting: float, node: int, level: float) -> int:
        """Add a simple control (zero-based link/node, node -1 for none); its index."""
        index = ctypes.c_int()
        self._check(
            self._lib.EN_addcontrol(
                self._ph, kind, link + 1, setting, node + 1, level, ctypes.byref(index)
            )
        )
        return index.value

    def control_count(self) -> int:
        """How many simple controls the project holds."""
        count = ctypes.c_int()
        self._check(self._lib.EN_getcount(self._ph, 5, ctypes.byref(count)))
        return count.value

    def control_link(self, index: int) -> int:
        """Zero-based link that the (one-based) simple control ``index`` acts on."""
        kind, link, node = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        setting, level = ctypes.c_double(), ctypes.c_double()
        self._check(
            self._lib.EN_getcontrol(
                self._ph,
                index,
                ctypes.byref(kind),
                ctypes.byref(link),
                ctypes.byref(setting),
                ctypes.byref(node),
                ctypes.byref(level),
            )
        )
        return link.value - 1

    def set_control_enabled(self, index: int, enabled: bool) -> None:
        """Switch a simple control (one-based index) on or off."""
        self._check(self._lib.EN_setcontrolenabled(self._ph, index, int(enabled)))

    def delete_control(self, index: int) -> None:
        """Delete a simple control by its (one-based) index."""
        self._check(self._lib.EN_deletecontrol(self._ph, index))

    def save(self, path: str | Path) -> None:
        """Write the project as EPANET writes .inp files."""
        self._check(self._lib.EN_saveinpfile(self._ph, str(path).encode()))

    # -- analysis ----------------------------------------------------------------------

    def run(
        self, duration: int | None = None, step: int | None = None, *, warm: bool = False
    ) -> Results:
        """An extended-period run from time 0, reporting every ``step`` seconds.

        Flows start afresh, so that a run never depends on the one before, unless
        ``warm``: then the solver starts from the last solution, which for a scenario
        close to the last one converges in a fraction of the iterations, to the same
        answer within the network's accuracy option. Raises NotConverged at the first
        time step whose hydraulics do not converge.
        """
        if duration is not None:
            self.set_time_param(DURATION, duration)
        total = self.time_param(DURATION)
        step = step or self.time_param(HYDSTEP)
        rows = total // step + 1
        n, m = len(self.node_ids), len(self.link_ids)
        results = Results(
            times=np.arange(rows, dtype=np.int64) * step,
            pressure=np.empty((rows, n)),
            head=np.empty((rows, n)),
            demand=np.empty((rows, n)),
            consumption=np.empty((rows, n)),
            full_demand=np.empty((rows, n)),
            leakage=np.empty((rows, n)),
            flow=np.empty((rows, m)),
            velocity=np.empty((rows, m)),
            status=np.empty((rows, m)),
            energy=np.empty((rows, m)),
            step=step,
        )
        node_props = (
            (PRESSURE, results.pressure),
            (HEAD, results.head),
            (DEMAND, results.demand),
            (DEMANDFLOW, results.consumption),
            (FULLDEMAND, results.full_demand),
            (EMITTERFLOW, results.leakage),
        )
        link_props = (
            (FLOW, results.flow),
            (VELOCITY, results.velocity),
            (STATUS, results.status),
            (ENERGY, results.energy),
        )
        leak = np.empty(n)
        lib, ph = self._lib, self._ph
        t, tstep = ctypes.c_long(), ctypes.c_long()
        self._open_hydraulics()
        self._check(lib.EN_initH(ph, _NOSAVE if warm else _INITFLOW))
        row = 0
        while True:
            code = lib.EN_runH(ph, ctypes.byref(t))
            now = t.value
            if code > 100:
                raise EngineError(code, f"Error {code} at {format_clock(now)}: {error_text(code)}")
            if code in UNCONVERGED_WARNINGS:
                raise NotConverged(now, self._weakest_node(), UNCONVERGED_WARNINGS[code])
            if code:
                message = f"{format_clock(now)}: {error_text(code)}"
                if not results.warnings or results.warnings[-1] != message:
                    results.warnings.append(message)
            if now % step == 0 and row < rows:
                for prop, array in node_props:
                    lib.EN_getnodevalues(ph, prop, array[row].ctypes.data)
                lib.EN_getnodevalues(ph, LEAKAGEFLOW, leak.ctypes.data)
                results.leakage[row] += leak
                for prop, array in link_props:
                    lib.EN_getlinkvalues(ph, prop, array[row].ctypes.data)
                row += 1
            self._check(lib.EN_nextH(ph, ctypes.byref(tstep)))
            if tstep.value <= 0:
                break
        if row < rows:
            # A run ended early (duration not a multiple of the step): keep what exists.
            for name in _SERIES:
                setattr(results, name, getattr(results, name)[:row])
            results.times = results.times[:row]
        return results

    def solve(self, at: int = 0) -> Results:
        """One steady-state period at clock time ``at`` seconds, same project, the
        solver starting from the last solution (see ``run``)."""
        duration = self.time_param(DURATION)
        try:
            self.set_time_param(DURATION, 0)
            if at:
                # A snapshot at a later time: shift the patterns' start instead.
                self.set_time_param(4, at)
            return self.run(step=3600, warm=True)
        finally:
            self.set_time_param(DURATION, duration)
            if at:
                self.set_time_param(4, 0)

    # -- machinery ---------------------------------------------------------------------

    def _open_hydraulics(self) -> None:
        if not self._hydraulics_open:
            self._check(self._lib.EN_openH(self._ph))
            self._hydraulics_open = True

    def _weakest_node(self) -> str:
        pressure = self.node_values(PRESSURE)
        junctions = np.flatnonzero(self.node_types == NODE_JUNCTION)
        if not len(junctions):
            return self.node_ids[0]
        return self.node_ids[int(junctions[np.argmin(pressure[junctions])])]

    def _ids(self, count_kind: int, getter: Any) -> list[str]:
        count = ctypes.c_int()
        self._check(self._lib.EN_getcount(self._ph, count_kind, ctypes.byref(count)))
        buf = ctypes.create_string_buffer(64)
        out = []
        for i in range(count.value):
            self._check(getter(self._ph, i + 1, buf))
            out.append(buf.value.decode())
        return out

    def _int(self, getter: Any, index: int) -> int:
        value = ctypes.c_int()
        self._check(getter(self._ph, index, ctypes.byref(value)))
        return value.value

    def _check(self, code: int) -> None:
        if code > 100:
            raise EngineError(code, f"Error {code}: {error_text(code)}")
