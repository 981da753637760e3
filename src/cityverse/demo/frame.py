"""A local metric frame anchored at a place: metres east and north to longitude and latitude.

frame = LocalFrame(BERKANE)
frame.lonlat(250.0, -120.0)     # (-2.3172..., 34.9189...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyproj import Transformer

BERKANE = (-2.32, 34.92)
"""Longitude and latitude of the demo city's centre (Berkane, Morocco)."""


@dataclass(frozen=True)
class LocalFrame:
    """Azimuthal equidistant projection centred on ``anchor`` (lon, lat): exact to a cm here."""

    anchor: tuple[float, float] = BERKANE
    _to_geo: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lon, lat = self.anchor
        proj = f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m"
        object.__setattr__(self, "_to_geo", Transformer.from_crs(proj, "EPSG:4326", always_xy=True))

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        """Longitude and latitude of the point ``x`` m east and ``y`` m north of the anchor."""
        lon, lat = self._to_geo.transform(x, y)
        return round(lon, 7), round(lat, 7)

    def line(self, points: list[tuple[float, float]]) -> list[list[float]]:
        """GeoJSON positions of a list of local points."""
        return [list(self.lonlat(x, y)) for x, y in points]
