"""Real data that ships inside a PyPI dependency, so `python train.py` runs offline.

gensim's test data holds the Lee document-similarity corpus (Lee, Pincombe and Welsh,
2005): 50 short Australian news documents (``lee.cor``) and, for every pair of them,
the mean similarity rating of human judges, rescaled to [0, 1]
(``similarities0-1.txt``, a 50 x 50 matrix of which we use the upper triangle: 1,225
pairs). ``lee_background.cor`` holds 300 more documents from the same source. Both are
Latin-1 encoded (a pound sign is byte 0xA3).
"""

from __future__ import annotations

from embedlab.errors import DataError
from embedlab.resources import gensim_test_file


def lee_pairs() -> tuple[list[str], list[str], list[float]]:
    """The 1,225 Lee document pairs with their human similarity in [0, 1]."""
    docs = [d for d in gensim_test_file("lee.cor").read_text(encoding="latin-1").splitlines() if d.strip()]
    rows = gensim_test_file("similarities0-1.txt").read_text(encoding="utf-8").splitlines()
    matrix = [[float(x) for x in row.split()] for row in rows if row.strip()]
    if len(docs) != 50 or len(matrix) != 50:
        raise DataError(f"Expected 50 Lee documents and a 50x50 matrix, got {len(docs)} and {len(matrix)}.")
    s1, s2, scores = [], [], []
    for i in range(50):
        for j in range(i + 1, 50):
            s1.append(docs[i])
            s2.append(docs[j])
            scores.append(matrix[i][j])
    return s1, s2, scores
