"""embedlab: choose an embedding model for RAG by measuring it.

Hydra meets the code only in :mod:`embedlab.run`; every other module takes plain
arguments and can be used from a REPL.
"""

__version__ = "0.1.0"
