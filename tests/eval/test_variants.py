"""The variant grid: its cells, their result tags (byte-identical to every committed result)
and the axes results.json records."""

from __future__ import annotations

import json

from embedlab.eval.variants import Cell, cells_record, deployed, read_cells, variant_grid


def test_tags_of_every_kind_of_cell() -> None:
    assert Cell(384).tag == "" and Cell(384).bytes_key == "bytes_per_vector@float32"
    assert Cell(128, "truncate").tag == "@128"
    assert Cell(128, "pca").tag == "@pca128"
    assert Cell(384, precision="int8").tag == "@int8"
    assert Cell(384, precision="binary", rescore=4).tag == "@binary+rescore4"
    assert Cell(384, index="hnsw").tag == "@hnsw"
    assert Cell(128, "truncate", precision="int8").key("ndcg@10") == "ndcg@10@128@int8"
    assert Cell(128, "pca", index="ivf_pq+rescore32").tag == "@pca128@ivf_pq+rescore32"
    assert Cell(64, "truncate", "ubinary", 2).bytes_key == "bytes_per_vector@64@ubinary+rescore2"


def test_grid_is_dimension_major_and_skips_widths_at_or_above_full() -> None:
    grid = variant_grid(384, dims=(128, 384, 999), pca_dims=(64,), precisions=("float32", "int8"),
                        rescore=4, index="hnsw")  # fmt: skip
    assert [c.tag for c in grid] == [
        "", "@int8+rescore4", "@hnsw",
        "@128", "@128@int8+rescore4", "@128@hnsw",
        "@pca64", "@pca64@int8+rescore4", "@pca64@hnsw",
    ]  # fmt: skip
    assert [c.tag for c in variant_grid(32)] == [""]


def test_deployed_cells_are_the_ones_nothing_refines() -> None:
    grid = variant_grid(384, dims=(128,), precisions=("int8",), index="flat")
    assert [c.tag for c in deployed(grid)] == ["@128@int8", "@128@flat"]
    assert [c.tag for c in deployed(variant_grid(384, index="hnsw"))] == ["@hnsw"]
    assert [c.tag for c in deployed(variant_grid(384))] == [""]


def test_cells_round_trip_through_results_json() -> None:
    grid = variant_grid(384, pca_dims=(128,), precisions=("binary",), rescore=4, index="ivf_pq+rescore32")
    records = json.loads(json.dumps(cells_record(grid)))
    assert records[4] == {
        "tag": "@pca128@binary+rescore4",
        "axes": {
            "dimension": 128,
            "dim_method": "pca",
            "precision": "binary",
            "rescore": 4,
            "index": None,
            "fusion": None,
        },
    }
    assert read_cells(records) == grid and read_cells(None) == []
