"""Networks for the water twin's tests: the benchmark networks EPyT's wheel ships, and a
tiny network small enough to check by hand."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cityverse.api.app import create_app
from cityverse.settings import Settings
from cityverse.store.base import EntityStore

_EPYT = importlib.util.find_spec("epyt")
assert _EPYT is not None and _EPYT.submodule_search_locations
NETWORKS = Path(next(iter(_EPYT.submodule_search_locations))) / "networks"
NET1 = NETWORKS / "asce-tf-wdst" / "Net1.inp"
NET1_BROKEN = NETWORKS / "asce-tf-wdst" / "Net1broken.inp"
LTOWN = NETWORKS / "L-TOWN.inp"
ANCHOR = (-2.93, 35.17)
"""Where the local-metre networks are placed: Berkane, Morocco."""

TINY = """[TITLE]
Tiny network: a reservoir, a PRV into zone B, a dead end behind an isolation valve

[JUNCTIONS]
;ID  Elev  Demand  Pattern
 J1  10    10      ;
 J2  10    5       ;
 J3  10    3       ;
 J4  10    2       ;

[RESERVOIRS]
 R1  60

[PIPES]
;ID  Node1  Node2  Length  Diameter  Roughness  MinorLoss  Status
 P1  R1     J1     1000    300       130        0          Open
 P3  J2     J3     500     150       130        0          Open
 P4  J3     J4     300     100       130        0          Open

[VALVES]
;ID  Node1  Node2  Diameter  Type  Setting  MinorLoss
 V1  J1     J2     200       PRV   40       0

[TAGS]
 NODE J1 A
 NODE J2 B
 NODE J3 B
 NODE J4 B

[OPTIONS]
 Units     LPS
 Headloss  H-W

[TIMES]
 Duration            6:00
 Hydraulic Timestep  1:00

[COORDINATES]
 R1  0     0
 J1  1000  0
 J2  1200  0
 J3  1700  0
 J4  2000  0

[END]
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """The tiny network as an .inp file."""
    path = tmp_path / "tiny.inp"
    path.write_text(TINY)
    return path


@pytest.fixture
async def client(store: EntityStore, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over each store."""
    app = create_app(Settings(data_dir=str(tmp_path), auth="off"), store=store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
        yield c
