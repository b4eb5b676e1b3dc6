"""The variant grid: the (dimension x embedding precision x index) cells one evaluation scores, all
from one float32 encode. A cell's *tag* is its metric-key suffix (``@128``, ``@pca128``, then ``@int8`` /
``@binary+rescore4`` or ``@hnsw``; precision and index never together: an index searches float
vectors); its *axes* go to results.json (``meta["cells"]``) for the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from embedlab.eval.index import index_spec

DimMethod = Literal["full", "truncate", "pca"]


def index_tag(kind: str, params: dict[str, Any] | None = None) -> str:
    """The tag of index ``kind`` with ``params`` (a config's ``index`` node): the kind owns it."""
    return index_spec(kind, **{k: v for k, v in (params or {}).items() if k != "kind"}).tag


@dataclass(frozen=True)
class Cell:
    """One scored variant: ``dim`` the scored width (the full one for ``"full"``), ``rescore`` the
    precision's re-ranking multiplier (0: none), ``index`` an :func:`index_tag` or None (exact)."""

    dim: int | None = None
    dim_method: DimMethod = "full"
    precision: str = "float32"
    rescore: int = 0
    index: str | None = None
    fusion: str | None = None  # hybrid with BM25: "rrf" | "convex" (of the full float32 exact ranking)

    @property
    def dim_tag(self) -> str:
        if self.dim_method == "full":
            return ""
        return f"@pca{self.dim}" if self.dim_method == "pca" else f"@{self.dim}"

    @property
    def tag(self) -> str:
        """The metric-key suffix: ``""``, ``@128``, ``@pca128@int8``, ``@binary+rescore4``, ``@hnsw``..."""
        out = self.dim_tag
        if self.precision != "float32":
            out += f"@{self.precision}" + (f"+rescore{self.rescore}" if self.rescore else "")
        return out + (f"@{self.index}" if self.index else "") + (f"@{self.fusion}" if self.fusion else "")

    def key(self, metric: str) -> str:
        return metric + self.tag  # ndcg@10 -> ndcg@10@128@int8

    @property
    def bytes_key(self) -> str:
        """The key of the stored bytes per vector (the full float32 cell says ``@float32``)."""
        return "bytes_per_vector" + (self.tag or "@float32")

    @property
    def storage(self) -> Cell:
        """The same vectors without the index: what the bytes per vector are measured on."""
        return replace(self, index=None, fusion=None)

    @property
    def axes(self) -> dict[str, Any]:
        return {
            "dimension": self.dim,
            "dim_method": self.dim_method,
            "precision": self.precision,
            "rescore": self.rescore,
            "index": self.index,
            "fusion": self.fusion,
        }

    def refines(self, other: Cell) -> bool:
        """True when this cell applies every choice ``other`` makes, and more."""
        return self._choices() > other._choices()

    def _choices(self) -> set[tuple[Any, ...]]:
        dim = ("dim", self.dim_method, self.dim) if self.dim_method != "full" else None
        precision = ("precision", self.precision, self.rescore) if self.precision != "float32" else None
        index = ("index", self.index) if self.index else None
        return {c for c in (dim, precision, index, ("fusion", self.fusion) if self.fusion else None) if c}


def variant_grid(
    full_dim: int,
    *,
    dims: Sequence[int] = (),
    pca_dims: Sequence[int] = (),
    precisions: Sequence[str] = (),
    rescore: int = 0,
    index: str | None = None,
) -> list[Cell]:
    """Every cell of one evaluation, dimension-major: each dimension (full, truncated below
    ``full_dim``, PCA) as float32, then at each other precision, then through ``index``."""
    bases = [Cell(full_dim)]
    bases += [Cell(d, "truncate") for d in dims if d < full_dim]  # Matryoshka-style truncation
    bases += [Cell(d, "pca") for d in pca_dims]
    cells = []
    for base in bases:
        cells.append(base)
        cells += [replace(base, precision=p, rescore=rescore) for p in precisions if p != "float32"]
        if index:
            cells.append(replace(base, index=index))
    return cells


def cells_record(cells: Iterable[Cell]) -> list[dict[str, Any]]:
    """``meta["cells"]`` of results.json: ``[{"tag": "@128@int8", "axes": {...}}, ...]``."""
    return [{"tag": c.tag, "axes": c.axes} for c in cells]


def read_cells(records: Iterable[dict[str, Any]] | None) -> list[Cell]:
    """The cells a results.json recorded (``meta["cells"]``); [] when it recorded none."""
    return [
        Cell(
            a.get("dimension"),
            a.get("dim_method", "full"),
            a.get("precision", "float32"),
            int(a.get("rescore") or 0),
            a.get("index"),
            a.get("fusion"),
        )
        for a in (r["axes"] for r in records or ())
    ]


def deployed(cells: Sequence[Cell]) -> list[Cell]:
    """The cells no other cell refines: what the job deploys. With a dimension, a precision and an
    index there are two (``@128@int8`` and ``@128@hnsw``); the system pays both losses."""
    return [c for c in cells if not any(o.refines(c) for o in cells)]
