"""Community boundaries (GeoJSON) and the community suggested from a map point.

Boundaries are stored per community as GeoJSON geometries; the suggestion tests the point against
shapely prepared geometries, built once per process and rebuilt when the boundaries change (the cache
key is the number of boundaries and their latest update time, read in one small query).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shapely import Point, prepare
from shapely.errors import GEOSException
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select

from core.db import DbSession, utcnow
from core.i18n import N_, DomainError
from core.models import Level, Unit
from routing.models import Case, UnitBoundary


class BoundaryImportError(DomainError):
    """The GeoJSON file cannot be imported; nothing was stored."""


@dataclass(frozen=True)
class ImportReport:
    """What an import of boundaries did."""

    created: int
    updated: int
    problems: list[str]


@dataclass(frozen=True)
class Suggestion:
    """The community containing a point, with its street and district codes (for the dependent selects)."""

    community: str
    community_name: str
    street: str
    district: str


def _code(feature: dict[str, Any]) -> str:
    props = feature.get("properties") or {}
    return str(props.get("code") or feature.get("id") or "").strip()


def import_boundaries(session: DbSession, collection: Any) -> ImportReport:
    """Store each feature's geometry on the community whose code is ``properties.code`` (flush only).

    Every problem is listed; when there is one, nothing is stored (the caller rolls back).
    """
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise BoundaryImportError("invalid", N_("文件必须是 GeoJSON FeatureCollection"))
    features = collection.get("features") or []
    units = {u.code: u for u in session.scalars(select(Unit).where(Unit.level == Level.community))}
    existing = {b.unit_id: b for b in session.scalars(select(UnitBoundary))}
    problems: list[str] = []
    staged: list[tuple[Unit, dict[str, Any]]] = []
    for number, feature in enumerate(features, start=1):
        code = _code(feature) if isinstance(feature, dict) else ""
        unit = units.get(code)
        if unit is None:
            problems.append(f"第 {number} 个要素：找不到社区编码 {code or '（空）'}")
            continue
        geometry = feature.get("geometry")
        try:
            parsed = shape(geometry)
        except (GEOSException, AttributeError, KeyError, TypeError, ValueError, IndexError):
            problems.append(f"第 {number} 个要素（{code}）：几何图形无法解析")
            continue
        if parsed.geom_type not in ("Polygon", "MultiPolygon") or parsed.is_empty or not parsed.is_valid:
            problems.append(f"第 {number} 个要素（{code}）：必须是有效的面（Polygon 或 MultiPolygon）")
            continue
        staged.append((unit, geometry))
    if problems:
        return ImportReport(0, 0, problems)
    created = updated = 0
    now = utcnow()
    for unit, geometry in staged:
        row = existing.get(unit.id)
        if row is None:
            session.add(UnitBoundary(unit_id=unit.id, geometry=geometry, updated_at=now))
            created += 1
        else:
            row.geometry, row.updated_at = geometry, now
            updated += 1
    session.flush()
    return ImportReport(created, updated, [])


class BoundaryIndex:
    """Prepared community geometries of this process, rebuilt when the stored boundaries change."""

    def __init__(self) -> None:
        self._key: tuple[int, datetime | None] | None = None
        self._shapes: list[tuple[BaseGeometry, Suggestion]] = []
        self._lock = threading.Lock()

    def _load(self, session: DbSession) -> list[tuple[BaseGeometry, Suggestion]]:
        key_row = session.execute(
            select(func.count(UnitBoundary.id), func.max(UnitBoundary.updated_at))
        ).one()
        key = (int(key_row[0]), key_row[1])
        if key == self._key:
            return self._shapes
        shapes = []
        for boundary in session.scalars(select(UnitBoundary).join(Unit).where(Unit.active.is_(True))):
            geometry = shape(boundary.geometry)
            prepare(geometry)
            unit = boundary.unit
            street = unit.parent
            district = street.parent if street is not None else None
            shapes.append(
                (
                    geometry,
                    Suggestion(
                        unit.code, unit.name, street.code if street else "", district.code if district else ""
                    ),
                )
            )
        with self._lock:
            self._key, self._shapes = key, shapes
        return shapes

    def suggest(self, session: DbSession, lat: float, lng: float) -> Suggestion | None:
        """The community whose boundary contains the point (the smallest one when several overlap)."""
        point = Point(lng, lat)  # GeoJSON order: longitude, latitude
        hits = [(g.area, s) for g, s in self._load(session) if g.contains(point)]
        return min(hits, key=lambda hit: hit[0])[1] if hits else None


boundary_index = BoundaryIndex()


def known_addresses(
    session: DbSession, community: str, prefix: str = "", limit: int = 20, min_reporters: int = 3
) -> list[str]:
    """Addresses of earlier cases in the community (most used first), for autocompletion.

    Only addresses that at least ``min_reporters`` different phone numbers gave: a shared place (a
    compound's gate, a road) rather than one resident's home, which would otherwise be shown to anyone.
    """
    reporters = func.count(func.distinct(Case.contact_phone))
    query = (
        select(Case.address, func.count(Case.id).label("uses"))
        .join(Unit, Unit.id == Case.community_id)
        .where(Unit.code == community)
        .group_by(Case.address)
        .having(reporters >= min_reporters)
        .order_by(func.count(Case.id).desc(), Case.address)
        .limit(limit)
    )
    if prefix:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Case.address.like(f"{escaped}%", escape="\\"))
    return [row.address for row in session.execute(query)]
