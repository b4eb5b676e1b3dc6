"""One Task per kind of work (STS, retrieval, bitext, MLM) and the runner that drives them."""
